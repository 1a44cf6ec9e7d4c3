// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * rtnetlink access through libmnl.
 *
 * Requests: each call opens its own NETLINK_ROUTE socket (struct nl_req),
 * sends one request with a fresh sequence number and reads replies until
 * the ACK, the end of the dump or an error. libmnl checks that every reply
 * carries our sequence number and port id; NLMSG_ERROR becomes a negative
 * errno, with the kernel's extended-ACK text kept for the warning.
 *
 * Warnings: a call whose answer is "not found" (-ENODEV, -ENOENT,
 * -ENETUNREACH, -EHOSTUNREACH) only logs at debug level, since the caller
 * knows whether that matters; every other failure is logged with pr_warn.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>

#include "log.h"
#include "netlink.h"

/* Big enough for any single rtnetlink message we ask for; the kernel also
 * sizes dump batches after the receive buffer we offer. */
#define NL_BUF_SIZE 32768
/* A dump that changed under us (NLM_F_DUMP_INTR) is simply redone. */
#define NL_DUMP_RETRIES 3

struct nl_req {
	char buf[NL_BUF_SIZE] __attribute__((aligned(8)));
	struct mnl_socket *nl;
	unsigned int portid;
	mnl_cb_t data_cb;	/* called for each reply message */
	void *data;
	int err;		/* negative errno from the kernel or a parser */
	char ext_msg[160];	/* kernel's extended-ACK text, if any */
};

static unsigned int nl_next_seq(void)
{
	static unsigned int seq;
	unsigned int s;

	/* 0 would disable libmnl's sequence check. */
	do
		s = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
	while (!s);
	return s;
}

static bool nl_not_found(int err)
{
	return err == -ENODEV || err == -ENOENT || err == -ENETUNREACH ||
	       err == -EHOSTUNREACH;
}

static void nl_report(const struct nl_req *r, int err, const char *what)
{
	const char *ext = r ? r->ext_msg : "";

	if (nl_not_found(err))
		pr_debug("netlink: %s: %s%s%s\n", what, strerror(-err),
			 *ext ? ": " : "", ext);
	else
		pr_warn("netlink: %s failed: %s%s%s\n", what, strerror(-err),
			*ext ? ": " : "", ext);
}

static int nl_addr_len(int family)
{
	switch (family) {
	case AF_INET:
		return 4;
	case AF_INET6:
		return 16;
	default:
		return -EAFNOSUPPORT;
	}
}

static const char *nl_addr_str(int family, const struct fg_addr *addr,
			       char *buf, size_t len)
{
	if (!addr || !inet_ntop(family, addr->bytes, buf, len))
		snprintf(buf, len, "<family %d address>", family);
	return buf;
}

static int nl_req_open(struct nl_req **out)
{
	struct nl_req *r;
	int one = 1;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!r->nl) {
		err = -errno;
		pr_warn("netlink: opening an rtnetlink socket failed: %s\n",
			strerror(errno));
		goto err_free;
	}
	if (mnl_socket_bind(r->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		pr_warn("netlink: binding an rtnetlink socket failed: %s\n",
			strerror(errno));
		goto err_close;
	}
	/* Best effort, both: the kernel's error text makes warnings useful
	 * and a capped ACK does not echo our request back. Older kernels
	 * lacking them still report the errno. */
	mnl_socket_setsockopt(r->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(r->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	r->portid = mnl_socket_get_portid(r->nl);
	*out = r;
	return 0;

err_close:
	mnl_socket_close(r->nl);
err_free:
	free(r);
	return err;
}

static void nl_req_close(struct nl_req *r)
{
	if (!r)
		return;
	mnl_socket_close(r->nl);
	free(r);
}

static struct nlmsghdr *nl_req_msg(struct nl_req *r, __u16 type,
				   __u16 flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(r->buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = nl_next_seq();
	return nlh;
}

static int nl_ext_ack_attr(const struct nlattr *attr, void *data)
{
	struct nl_req *r = data;

	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
		snprintf(r->ext_msg, sizeof(r->ext_msg), "%s",
			 mnl_attr_get_str(attr));
	return MNL_CB_OK;
}

static void nl_parse_ext_ack(const struct nlmsghdr *nlh, struct nl_req *r)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	/* Without NLM_F_CAPPED the TLVs follow a copy of our request. */
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	if (off >= mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_parse(nlh, off, nl_ext_ack_attr, r);
}

static int nl_cb_noop(const struct nlmsghdr *nlh, void *data)
{
	return MNL_CB_OK;
}

static int nl_cb_error(const struct nlmsghdr *nlh, void *data)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	struct nl_req *r = data;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
		r->err = -EBADMSG;
		return MNL_CB_ERROR;
	}
	if (e->error == 0)
		return MNL_CB_STOP; /* the ACK of our request */
	r->err = e->error < 0 ? e->error : -e->error;
	nl_parse_ext_ack(nlh, r);
	return MNL_CB_ERROR;
}

static int nl_cb_done(const struct nlmsghdr *nlh, void *data)
{
	struct nl_req *r = data;
	int err;

	/* A dump that failed part way says so in NLMSG_DONE's payload. */
	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(err)) {
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
		if (err < 0) {
			r->err = err;
			return MNL_CB_ERROR;
		}
	}
	return MNL_CB_STOP;
}

static int nl_cb_data(const struct nlmsghdr *nlh, void *data)
{
	struct nl_req *r = data;
	int ret;

	if (!r->data_cb)
		return MNL_CB_OK;
	ret = r->data_cb(nlh, r->data);
	if (ret == MNL_CB_ERROR && !r->err)
		r->err = errno ? -errno : -EBADMSG;
	return ret;
}

/* Sends @nlh (built in r->buf) and reads the replies, calling @cb with
 * @data for each data message. Returns 0 or a negative errno. */
static int nl_req_run(struct nl_req *r, const struct nlmsghdr *nlh,
		      mnl_cb_t cb, void *data)
{
	/* Not const only because mnl_cb_run2() takes a non-const array. */
	static mnl_cb_t ctl_cb[NLMSG_MIN_TYPE] = {
		[NLMSG_NOOP] = nl_cb_noop,
		[NLMSG_ERROR] = nl_cb_error,
		[NLMSG_DONE] = nl_cb_done,
		[NLMSG_OVERRUN] = nl_cb_noop,
	};
	unsigned int seq = nlh->nlmsg_seq;
	ssize_t n;
	int ret;

	r->data_cb = cb;
	r->data = data;
	r->err = 0;
	r->ext_msg[0] = '\0';

	if (mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(r->nl, r->buf, sizeof(r->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		errno = 0;
		ret = mnl_cb_run2(r->buf, n, seq, r->portid, nl_cb_data, r,
				  ctl_cb, MNL_ARRAY_SIZE(ctl_cb));
	} while (ret == MNL_CB_OK);

	if (ret < 0) {
		/* errno alone: wrong seq/port (EPROTO/ESRCH) or an
		 * interrupted dump (EINTR). */
		if (r->err)
			return r->err;
		return errno ? -errno : -EIO;
	}
	return 0;
}

/* Attribute table parsing: unknown (newer) attributes are skipped. */
struct nl_attrs {
	const struct nlattr **tb;
	unsigned int max;
};

static int nl_attr_collect(const struct nlattr *attr, void *data)
{
	struct nl_attrs *a = data;
	unsigned int type = mnl_attr_get_type(attr);

	if (type <= a->max)
		a->tb[type] = attr;
	return MNL_CB_OK;
}

/* Checks that @nlh holds a @hdrlen family header, then indexes its
 * attributes into @tb[0..@max]. Returns 0 or -EBADMSG. */
static int nl_parse(const struct nlmsghdr *nlh, size_t hdrlen,
		    const struct nlattr **tb, unsigned int max)
{
	struct nl_attrs a = { .tb = tb, .max = max };

	memset(tb, 0, (max + 1) * sizeof(*tb));
	if (mnl_nlmsg_get_payload_len(nlh) < hdrlen)
		return -EBADMSG;
	if (mnl_attr_parse(nlh, hdrlen, nl_attr_collect, &a) < 0)
		return -EBADMSG;
	return 0;
}

/* Copies an address attribute of @family into @out (zero-padded). */
static int nl_attr_addr(const struct nlattr *attr, int family,
			struct fg_addr *out)
{
	int len = nl_addr_len(family);

	memset(out, 0, sizeof(*out));
	if (len < 0)
		return len;
	if (!attr || mnl_attr_get_payload_len(attr) != (unsigned int)len)
		return -EBADMSG;
	memcpy(out->bytes, mnl_attr_get_payload(attr), len);
	return 0;
}

static int nl_attr_u32(const struct nlattr *attr, __u32 *out)
{
	if (!attr || mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
		return -EBADMSG;
	*out = mnl_attr_get_u32(attr);
	return 0;
}

/* ---- links ---- */

static int link_index_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	int *ifindex = data;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi)) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	*ifindex = ifi->ifi_index;
	return MNL_CB_OK;
}

int fg_nl_ifindex(const char *ifname)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct nl_req *r;
	char what[64];
	int ifindex = 0;
	int err;

	/* Such a name cannot exist; the kernel would say EINVAL. */
	if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE)
		return -ENODEV;

	err = nl_req_open(&r);
	if (err)
		return err;
	nlh = nl_req_msg(r, RTM_GETLINK, NLM_F_ACK);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);

	err = nl_req_run(r, nlh, link_index_cb, &ifindex);
	if (!err && ifindex <= 0)
		err = -ENODEV;
	if (err) {
		snprintf(what, sizeof(what), "RTM_GETLINK for %s", ifname);
		nl_report(r, err, what);
	}
	nl_req_close(r);

	/* A kernel refusing the lookup by name (rather than not finding
	 * it) still has the ioctl path. */
	if (err && err != -ENODEV) {
		ifindex = if_nametoindex(ifname);
		if (ifindex > 0)
			return ifindex;
		return errno == ENODEV || errno == ENXIO ? -ENODEV : err;
	}
	return err ? err : ifindex;
}

/* ---- addresses ---- */

/* Every usable address of the interface, per family (0: IPv4, 1: IPv6),
 * in the dump's order; more than NL_MAX_ADDRS of a family are ignored. */
#define NL_MAX_ADDRS 256

struct addr_dump {
	int ifindex;
	struct fg_addr addrs[2][NL_MAX_ADDRS];
	unsigned n[2];
};

static __u32 addr_flags(const struct ifaddrmsg *ifa,
			const struct nlattr **tb)
{
	__u32 flags;

	/* IFA_FLAGS carries all the flags; ifa_flags only the low 8. */
	if (nl_attr_u32(tb[IFA_FLAGS], &flags) == 0)
		return flags;
	return ifa->ifa_flags;
}

/* The local address: IFA_ADDRESS is the peer on point-to-point links. */
static const struct nlattr *addr_local(const struct nlattr **tb)
{
	return tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
}

/* Whether the kernel would pick this address as the source of new flows
 * toward another host: global scope, DAD done and succeeded, not past its
 * preferred lifetime. (IPv4 has no DAD, but `preferred_lft 0` marks an
 * IPv4 address deprecated too, with the same meaning.) */
static bool addr_usable(const struct ifaddrmsg *ifa, __u32 flags)
{
	if (ifa->ifa_scope != RT_SCOPE_UNIVERSE)
		return false;
	return !(flags & (IFA_F_TENTATIVE | IFA_F_DEPRECATED |
			  IFA_F_DADFAILED));
}

static int addr_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1];
	struct addr_dump *d = data;
	int f;

	if (nlh->nlmsg_type != RTM_NEWADDR)
		return MNL_CB_OK;
	if (nl_parse(nlh, sizeof(*ifa), tb, IFA_MAX)) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if ((int)ifa->ifa_index != d->ifindex)
		return MNL_CB_OK;

	switch (ifa->ifa_family) {
	case AF_INET:
		f = 0;
		break;
	case AF_INET6:
		f = 1;
		break;
	default:
		return MNL_CB_OK;
	}
	/* The dump lists addresses in the kernel's order (primary first). */
	if (d->n[f] >= NL_MAX_ADDRS)
		return MNL_CB_OK;
	if (!addr_usable(ifa, addr_flags(ifa, tb)))
		return MNL_CB_OK;
	if (nl_attr_addr(addr_local(tb), ifa->ifa_family, &d->addrs[f][d->n[f]]))
		return MNL_CB_OK;
	d->n[f]++;
	return MNL_CB_OK;
}

static int addr_dump_once(int ifindex, struct addr_dump *d)
{
	struct ifaddrmsg *ifa;
	struct nlmsghdr *nlh;
	struct nl_req *r;
	char what[64];
	int err;

	memset(d, 0, sizeof(*d));
	d->ifindex = ifindex;
	err = nl_req_open(&r);
	if (err)
		return err;
	nlh = nl_req_msg(r, RTM_GETADDR, NLM_F_DUMP);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_UNSPEC;

	err = nl_req_run(r, nlh, addr_dump_cb, d);
	if (err && err != -EINTR) {
		snprintf(what, sizeof(what), "RTM_GETADDR dump for ifindex %d",
			 ifindex);
		nl_report(r, err, what);
	}
	nl_req_close(r);
	return err;
}

static bool addr_wanted(const struct fg_addr *a, int family, const struct fg_addr *want,
			const int *want_family, size_t n_want)
{
	size_t i;

	for (i = 0; i < n_want; i++)
		if (want_family[i] == family && !memcmp(&want[i], a, sizeof(*a)))
			return true;
	return false;
}

/* The family's SNAT sources: those of its addresses that are wanted, or
 * every one when none is; FG_SNAT_ADDRS at most. */
static __u8 addr_pick(const struct fg_addr *addrs, unsigned n, int family, struct fg_addr *out,
		      const struct fg_addr *want, const int *want_family, size_t n_want)
{
	unsigned i, k = 0, any = 0;

	for (i = 0; i < n; i++)
		any += addr_wanted(&addrs[i], family, want, want_family, n_want);
	for (i = 0; i < n && k < FG_SNAT_ADDRS; i++)
		if (!any || addr_wanted(&addrs[i], family, want, want_family, n_want))
			out[k++] = addrs[i];
	return (__u8)k;
}

int fg_nl_iface_addrs_pick(int ifindex, struct fg_iface *out, const struct fg_addr *want,
			   const int *want_family, size_t n_want)
{
	int tries = NL_DUMP_RETRIES;
	struct addr_dump *d;
	int err;

	memset(out, 0, sizeof(*out));
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	do
		err = addr_dump_once(ifindex, d);
	while (err == -EINTR && --tries);

	if (err == -EINTR)
		pr_warn("netlink: RTM_GETADDR dump for ifindex %d failed: addresses kept changing during %d dumps\n",
			ifindex, NL_DUMP_RETRIES);
	if (!err) {
		out->n_v4 = addr_pick(d->addrs[0], d->n[0], FG_AF_INET, out->v4, want, want_family,
				      n_want);
		out->n_v6 = addr_pick(d->addrs[1], d->n[1], FG_AF_INET6, out->v6, want, want_family,
				      n_want);
		out->flags = (out->n_v4 ? FG_IFACE_F_V4 : 0) | (out->n_v6 ? FG_IFACE_F_V6 : 0);
	}
	free(d);
	return err;
}

int fg_nl_iface_addrs(int ifindex, struct fg_iface *out)
{
	return fg_nl_iface_addrs_pick(ifindex, out, NULL, NULL, 0);
}

/* ---- routes ---- */

struct route_reply {
	int oif;
	struct fg_addr prefsrc;
	struct fg_addr gateway;
};

/* The next hop: RTA_GATEWAY, or RTA_VIA when the kernel uses that form. A
 * next hop of the other family cannot be expressed to our caller. */
static int route_gateway(const struct rtmsg *rtm, const struct nlattr **tb,
			 struct fg_addr *gw)
{
	const struct rtvia *via;
	int len = nl_addr_len(rtm->rtm_family);

	memset(gw, 0, sizeof(*gw));
	if (tb[RTA_GATEWAY])
		return nl_attr_addr(tb[RTA_GATEWAY], rtm->rtm_family, gw);
	if (!tb[RTA_VIA])
		return 0; /* directly connected */
	via = mnl_attr_get_payload(tb[RTA_VIA]);
	if (mnl_attr_get_payload_len(tb[RTA_VIA]) < sizeof(*via) + len ||
	    via->rtvia_family != rtm->rtm_family)
		return -EAFNOSUPPORT;
	memcpy(gw->bytes, via->rtvia_addr, len);
	return 0;
}

static int route_get_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1];
	struct route_reply *rr = data;
	__u32 oif;
	int err;

	if (nlh->nlmsg_type != RTM_NEWROUTE)
		return MNL_CB_OK;
	if (nl_parse(nlh, sizeof(*rtm), tb, RTA_MAX)) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	if (nl_attr_u32(tb[RTA_OIF], &oif) == 0)
		rr->oif = oif;
	if (tb[RTA_PREFSRC])
		nl_attr_addr(tb[RTA_PREFSRC], rtm->rtm_family, &rr->prefsrc);
	err = route_gateway(rtm, tb, &rr->gateway);
	if (err) {
		errno = -err;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

int fg_nl_route_get(const struct fg_addr *dst, int family, int *oif,
		    struct fg_addr *prefsrc, struct fg_addr *gateway)
{
	struct route_reply rr = {};
	char what[96], abuf[INET6_ADDRSTRLEN];
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	struct nl_req *r;
	int len = nl_addr_len(family);
	int err;

	if (len < 0 || !dst)
		return -EINVAL;
	err = nl_req_open(&r);
	if (err)
		return err;
	nlh = nl_req_msg(r, RTM_GETROUTE, NLM_F_ACK);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = family;
	rtm->rtm_dst_len = len * 8;
	mnl_attr_put(nlh, RTA_DST, len, dst->bytes);

	err = nl_req_run(r, nlh, route_get_cb, &rr);
	/* A reply without an output device (e.g. a blackhole) is as good
	 * as no route for forwarding. */
	if (!err && rr.oif <= 0)
		err = -ENETUNREACH;
	if (err) {
		snprintf(what, sizeof(what), "RTM_GETROUTE to %s",
			 nl_addr_str(family, dst, abuf, sizeof(abuf)));
		nl_report(r, err, what);
		goto out;
	}
	if (oif)
		*oif = rr.oif;
	if (prefsrc)
		*prefsrc = rr.prefsrc;
	if (gateway)
		*gateway = rr.gateway;
out:
	nl_req_close(r);
	return err;
}

/* ---- neighbours ---- */

struct neigh_reply {
	__u8 mac[6];
	__u16 state;
	__u8 flags;	/* NTF_* */
	__u32 ext_flags; /* NTF_EXT_* */
};

static int neigh_get_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1];
	struct neigh_reply *nr = data;

	if (nlh->nlmsg_type != RTM_NEWNEIGH)
		return MNL_CB_OK;
	if (nl_parse(nlh, sizeof(*ndm), tb, NDA_MAX)) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	nr->state = ndm->ndm_state;
	nr->flags = ndm->ndm_flags;
	nl_attr_u32(tb[NDA_FLAGS_EXT], &nr->ext_flags);
	/* No link-layer address yet (INCOMPLETE/FAILED): leave zeros. */
	if (tb[NDA_LLADDR] && mnl_attr_get_payload_len(tb[NDA_LLADDR]) == 6)
		memcpy(nr->mac, mnl_attr_get_payload(tb[NDA_LLADDR]), 6);
	return MNL_CB_OK;
}

static struct nlmsghdr *neigh_msg(struct nl_req *r, __u16 type,
				  __u16 flags, int ifindex,
				  const struct fg_addr *addr, int family)
{
	struct nlmsghdr *nlh = nl_req_msg(r, type, flags);
	struct ndmsg *ndm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ndm));

	ndm->ndm_family = family;
	ndm->ndm_ifindex = ifindex;
	mnl_attr_put(nlh, NDA_DST, nl_addr_len(family), addr->bytes);
	return nlh;
}

static void neigh_what(char *buf, size_t len, const char *op, int ifindex,
		       const struct fg_addr *addr, int family)
{
	char abuf[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s %s on ifindex %d", op,
		 nl_addr_str(family, addr, abuf, sizeof(abuf)), ifindex);
}

static int neigh_get(int ifindex, const struct fg_addr *addr, int family,
		     struct neigh_reply *nr)
{
	struct nlmsghdr *nlh;
	struct nl_req *r;
	char what[96];
	int err;

	memset(nr, 0, sizeof(*nr));
	if (nl_addr_len(family) < 0 || !addr || ifindex <= 0)
		return -EINVAL;
	err = nl_req_open(&r);
	if (err)
		return err;
	nlh = neigh_msg(r, RTM_GETNEIGH, NLM_F_ACK, ifindex, addr, family);
	err = nl_req_run(r, nlh, neigh_get_cb, nr);
	if (err) {
		neigh_what(what, sizeof(what), "RTM_GETNEIGH", ifindex, addr,
			   family);
		nl_report(r, err, what);
	}
	nl_req_close(r);
	return err;
}

int fg_nl_neigh_lookup(int ifindex, const struct fg_addr *addr, int family,
		       __u8 mac[6], __u16 *state)
{
	struct neigh_reply nr;
	int err;

	err = neigh_get(ifindex, addr, family, &nr);
	if (err)
		return err;
	if (mac)
		memcpy(mac, nr.mac, 6);
	if (state)
		*state = nr.state;
	return 0;
}

/* Entries that NTF_USE must not touch: the kernel's USE path clears
 * NUD_PERMANENT (the static MAC is lost and the entry goes INCOMPLETE)
 * and, being an admin update, drops the EXT_LEARNED/MANAGED ownership. A
 * NOARP entry needs no resolution at all. */
static bool neigh_leave_alone(const struct neigh_reply *nr)
{
	return (nr->state & (NUD_PERMANENT | NUD_NOARP)) ||
	       (nr->flags & NTF_EXT_LEARNED) ||
	       (nr->ext_flags & NTF_EXT_MANAGED);
}

int fg_nl_neigh_resolve(int ifindex, const struct fg_addr *addr, int family)
{
	struct neigh_reply nr;
	struct nlmsghdr *nlh;
	struct ndmsg *ndm;
	struct nl_req *r;
	char what[96];
	int err;

	err = neigh_get(ifindex, addr, family, &nr);
	if (err && err != -ENOENT) {
		neigh_what(what, sizeof(what), "resolving", ifindex, addr,
			   family);
		pr_warn("netlink: %s failed: looking up the entry: %s\n",
			what, strerror(-err));
		return err;
	}
	/* (An admin could make the entry PERMANENT between the two
	 * requests; that race only costs a re-add of the static entry.) */
	if (!err && neigh_leave_alone(&nr))
		return 0;

	err = nl_req_open(&r);
	if (err)
		return err;
	/* What `ip neigh replace ADDR dev DEV use` sends, except the state:
	 * iproute2 puts NUD_PERMANENT in ndm_state. With NTF_USE the kernel
	 * does not apply that state (it only triggers resolution, as a
	 * packet would), but when it creates the entry it takes
	 * NUD_PERMANENT as "exempt from garbage collection". NUD_NONE
	 * gives an ordinary entry that GC may reclaim. */
	nlh = neigh_msg(r, RTM_NEWNEIGH,
			NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, ifindex,
			addr, family);
	ndm = mnl_nlmsg_get_payload(nlh);
	ndm->ndm_state = NUD_NONE;
	ndm->ndm_flags = NTF_USE;

	err = nl_req_run(r, nlh, NULL, NULL);
	if (err) {
		neigh_what(what, sizeof(what), "RTM_NEWNEIGH (use) for",
			   ifindex, addr, family);
		/* Resolution was asked for, so a missing device is worth
		 * a warning, unlike a missing entry in a lookup. */
		pr_warn("netlink: %s failed: %s%s%s\n", what, strerror(-err),
			r->ext_msg[0] ? ": " : "", r->ext_msg);
	}
	nl_req_close(r);
	return err;
}

/* ---- monitor ---- */

struct fg_nl_monitor {
	char buf[NL_BUF_SIZE] __attribute__((aligned(8)));
	struct mnl_socket *nl;
};

struct mon_run {
	fg_nl_event_cb cb;
	void *ctx;
	int count;
	int ret;	/* the callback's non-zero return */
};

static const struct {
	unsigned int group;
	const char *name;
} mon_groups[] = {
	{ RTNLGRP_LINK, "RTNLGRP_LINK" },
	{ RTNLGRP_IPV4_IFADDR, "RTNLGRP_IPV4_IFADDR" },
	{ RTNLGRP_IPV6_IFADDR, "RTNLGRP_IPV6_IFADDR" },
	{ RTNLGRP_NEIGH, "RTNLGRP_NEIGH" },
};

/* Room for bursts (an interface going away deletes all its addresses and
 * neighbours at once); capped by net.core.rmem_max, overruns are then
 * reported as RESYNC. */
#define MON_RCVBUF (1 << 20)

int fg_nl_monitor_open(struct fg_nl_monitor **out)
{
	struct fg_nl_monitor *mon;
	int rcvbuf = MON_RCVBUF;
	unsigned int i;
	int err;

	mon = calloc(1, sizeof(*mon));
	if (!mon)
		return -ENOMEM;
	mon->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!mon->nl) {
		err = -errno;
		pr_warn("netlink: opening the monitor socket failed: %s\n",
			strerror(errno));
		goto err_free;
	}
	if (mnl_socket_bind(mon->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		pr_warn("netlink: binding the monitor socket failed: %s\n",
			strerror(errno));
		goto err_close;
	}
	for (i = 0; i < MNL_ARRAY_SIZE(mon_groups); i++) {
		unsigned int group = mon_groups[i].group;

		if (mnl_socket_setsockopt(mon->nl, NETLINK_ADD_MEMBERSHIP,
					  &group, sizeof(group)) < 0) {
			err = -errno;
			pr_warn("netlink: monitor subscribing to %s failed: %s\n",
				mon_groups[i].name, strerror(errno));
			goto err_close;
		}
	}
	if (setsockopt(mnl_socket_get_fd(mon->nl), SOL_SOCKET, SO_RCVBUF,
		       &rcvbuf, sizeof(rcvbuf)) < 0)
		pr_debug("netlink: monitor SO_RCVBUF %d: %s\n", rcvbuf,
			 strerror(errno));
	*out = mon;
	return 0;

err_close:
	mnl_socket_close(mon->nl);
err_free:
	free(mon);
	return err;
}

int fg_nl_monitor_fd(const struct fg_nl_monitor *mon)
{
	return mnl_socket_get_fd(mon->nl);
}

void fg_nl_monitor_close(struct fg_nl_monitor *mon)
{
	if (!mon)
		return;
	mnl_socket_close(mon->nl);
	free(mon);
}

const char *fg_nl_event_name(enum fg_nl_event_type type)
{
	switch (type) {
	case FG_NL_EV_LINK_UP:
		return "LINK_UP";
	case FG_NL_EV_LINK_DOWN:
		return "LINK_DOWN";
	case FG_NL_EV_LINK_DEL:
		return "LINK_DEL";
	case FG_NL_EV_ADDR_ADD:
		return "ADDR_ADD";
	case FG_NL_EV_ADDR_DEL:
		return "ADDR_DEL";
	case FG_NL_EV_NEIGH_CHANGE:
		return "NEIGH_CHANGE";
	case FG_NL_EV_RESYNC:
		return "RESYNC";
	}
	return "UNKNOWN";
}

/* The mon_* decoders return true when @nlh gave an event in @ev.
 * Malformed or uninteresting messages are skipped, not errors: one odd
 * notification must not stop the monitor. */
static bool mon_link(const struct nlmsghdr *nlh, struct fg_nl_event *ev)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1];

	if (nl_parse(nlh, sizeof(*ifi), tb, IFLA_MAX))
		return false;
	/* AF_BRIDGE messages are about bridge port state; an RTM_DELLINK
	 * of that family means "left the bridge", not "removed". */
	if (ifi->ifi_family != AF_UNSPEC)
		return false;
	ev->ifindex = ifi->ifi_index;
	if (tb[IFLA_IFNAME] &&
	    mnl_attr_validate(tb[IFLA_IFNAME], MNL_TYPE_NUL_STRING) == 0)
		snprintf(ev->ifname, sizeof(ev->ifname), "%s",
			 mnl_attr_get_str(tb[IFLA_IFNAME]));
	if (nlh->nlmsg_type == RTM_DELLINK)
		ev->type = FG_NL_EV_LINK_DEL;
	else if ((ifi->ifi_flags & IFF_UP) && (ifi->ifi_flags & IFF_RUNNING))
		ev->type = FG_NL_EV_LINK_UP;
	else
		ev->type = FG_NL_EV_LINK_DOWN;
	return true;
}

static bool mon_addr(const struct nlmsghdr *nlh, struct fg_nl_event *ev)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1];

	if (nl_parse(nlh, sizeof(*ifa), tb, IFA_MAX))
		return false;
	if (nl_attr_addr(addr_local(tb), ifa->ifa_family, &ev->addr))
		return false;
	ev->type = nlh->nlmsg_type == RTM_NEWADDR ? FG_NL_EV_ADDR_ADD
						  : FG_NL_EV_ADDR_DEL;
	ev->ifindex = ifa->ifa_index;
	ev->family = ifa->ifa_family;
	ev->prefixlen = ifa->ifa_prefixlen;
	return true;
}

static bool mon_neigh(const struct nlmsghdr *nlh, struct fg_nl_event *ev)
{
	const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[NDA_MAX + 1];

	if (nl_parse(nlh, sizeof(*ndm), tb, NDA_MAX))
		return false;
	/* Bridge FDB entries share the group; proxy entries are not
	 * next hops. Neither has an IP neighbour to report. */
	if (ndm->ndm_flags & NTF_PROXY)
		return false;
	if (nl_attr_addr(tb[NDA_DST], ndm->ndm_family, &ev->addr))
		return false;
	ev->type = FG_NL_EV_NEIGH_CHANGE;
	ev->ifindex = ndm->ndm_ifindex;
	ev->family = ndm->ndm_family;
	ev->nud_state = nlh->nlmsg_type == RTM_DELNEIGH ? NUD_NONE
							: ndm->ndm_state;
	return true;
}

static int mon_deliver(struct mon_run *run, const struct fg_nl_event *ev)
{
	int ret;

	run->count++;
	ret = run->cb(ev, run->ctx);
	if (ret) {
		run->ret = ret;
		return MNL_CB_STOP;
	}
	return MNL_CB_OK;
}

static int mon_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct fg_nl_event ev = {};
	bool have;

	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK:
		have = mon_link(nlh, &ev);
		break;
	case RTM_NEWADDR:
	case RTM_DELADDR:
		have = mon_addr(nlh, &ev);
		break;
	case RTM_NEWNEIGH:
	case RTM_DELNEIGH:
		have = mon_neigh(nlh, &ev);
		break;
	default:
		have = false;
		break;
	}
	if (!have)
		return MNL_CB_OK;
	return mon_deliver(data, &ev);
}

/* Reads one datagram. Returns 1 when one was processed, 0 when the queue
 * is empty, or a negative errno; -ENOBUFS means the kernel dropped
 * notifications (the socket stays usable). */
static int mon_read_one(struct fg_nl_monitor *mon, struct mon_run *run)
{
	ssize_t n;
	int ret;

	do
		n = mnl_socket_recvfrom(mon->nl, mon->buf, sizeof(mon->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;

	/* seq 0 and portid 0 turn libmnl's checks off: notifications carry
	 * whatever port id and sequence the originating request had. */
	ret = mnl_cb_run(mon->buf, n, 0, 0, mon_msg_cb, run);
	if (ret < 0 && !run->ret)
		pr_debug("netlink: monitor: skipping a malformed datagram: %s\n",
			 strerror(errno));
	return 1;
}

int fg_nl_monitor_process(struct fg_nl_monitor *mon, fg_nl_event_cb cb,
			  void *ctx)
{
	struct fg_nl_event resync = { .type = FG_NL_EV_RESYNC };
	struct mon_run run = { .cb = cb, .ctx = ctx };
	bool resync_sent = false;
	int ret;

	for (;;) {
		ret = mon_read_one(mon, &run);
		if (ret == -ENOBUFS) {
			/* One RESYNC covers every overrun of this call: the
			 * caller re-dumps after it anyway. */
			if (!resync_sent) {
				resync_sent = true;
				mon_deliver(&run, &resync);
			}
		} else if (ret < 0) {
			pr_warn("netlink: monitor read failed: %s\n",
				strerror(-ret));
			return ret;
		} else if (ret == 0) {
			break;
		}
		if (run.ret)
			return run.ret;
	}
	return run.count;
}
