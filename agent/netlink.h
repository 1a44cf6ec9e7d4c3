/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * rtnetlink access for the agent: interfaces, their addresses, routes and
 * neighbours, plus a monitor that tells the agent when any of them change.
 *
 * Every function returns 0 (or a non-negative value where stated) on
 * success and a negative errno on failure. "Not found" answers (-ENODEV,
 * -ENOENT, -ENETUNREACH, -EHOSTUNREACH) are only logged at debug level;
 * other failures are logged with pr_warn. Request/reply calls open their
 * own short-lived socket, so they are safe to call from any thread; the
 * monitor is one object per caller and is not thread-safe.
 *
 * Families are AF_INET or AF_INET6 (equal to FG_AF_INET / FG_AF_INET6).
 * Addresses are struct fg_addr: IPv4 in the first four bytes, rest zero.
 */
#ifndef FG_NETLINK_H
#define FG_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "fleetgate.h"

/* ifindex of @ifname (> 0), or -ENODEV when there is no such interface. */
int fg_nl_ifindex(const char *ifname);

/*
 * Fills @out with the usable addresses of each family on @ifindex, in the
 * kernel's order (primary first), FG_SNAT_ADDRS of each at most: global
 * scope (RT_SCOPE_UNIVERSE), neither tentative, deprecated nor DAD-failed
 * (in practice these flags are IPv6's, but `preferred_lft 0` deprecates an
 * IPv4 address too). Sets n_v4 / n_v6 and FG_IFACE_F_V4 / FG_IFACE_F_V6 for
 * the families found. Returns 0 even when none is found (flags 0), including
 * for an ifindex that does not exist: either way there is nothing to SNAT
 * to. Negative errno only when netlink itself failed.
 */
int fg_nl_iface_addrs(int ifindex, struct fg_iface *out);
/* The same with --snat-addr: of each family, only the addresses of
 * @ifindex that are among the @n_want given (@want_family[i] FG_AF_INET
 * or FG_AF_INET6), or every one when none of its own is given; whichever
 * they are, FG_SNAT_ADDRS at most. */
int fg_nl_iface_addrs_pick(int ifindex, struct fg_iface *out, const struct fg_addr *want,
			   const int *want_family, size_t n_want);

/*
 * Asks the kernel which route it would use toward @dst (`ip route get`).
 * Fills *@oif with the output ifindex, *@prefsrc with the preferred source
 * address (zero when the kernel gives none) and *@gateway with the next hop
 * (zero when @dst is directly connected). Any output pointer may be NULL.
 * Returns e.g. -ENETUNREACH when there is no route.
 */
int fg_nl_route_get(const struct fg_addr *dst, int family, int *oif,
		    struct fg_addr *prefsrc, struct fg_addr *gateway);

/*
 * Asks the kernel to resolve @addr on @ifindex now (ARP / neighbour
 * solicitation), so that the XDP program's bpf_fib_lookup() finds the
 * neighbour on a later packet instead of returning NO_NEIGH forever. Like
 * `ip neigh replace ADDR dev DEV use`, but it never creates a PERMANENT or
 * GC-exempt entry, and it leaves PERMANENT, NOARP, externally learned and
 * kernel-managed entries alone (NTF_USE would demote a PERMANENT one to
 * INCOMPLETE, dropping its MAC). A REACHABLE entry is left as is; a STALE
 * one is re-probed. Returns 0 once the request is accepted: resolution
 * itself is asynchronous.
 */
int fg_nl_neigh_resolve(int ifindex, const struct fg_addr *addr, int family);

/*
 * Looks up the neighbour entry for @addr on @ifindex. Fills @mac (zero when
 * the entry has no link-layer address yet, e.g. INCOMPLETE) and *@state
 * (NUD_* bits); either may be NULL. Returns -ENOENT when there is no entry.
 */
int fg_nl_neigh_lookup(int ifindex, const struct fg_addr *addr, int family,
		       __u8 mac[6], __u16 *state);

/* Monitor: link, IPv4/IPv6 address and neighbour notifications. */

enum fg_nl_event_type {
	FG_NL_EV_LINK_UP = 1,	/* admin up and running (carrier) */
	FG_NL_EV_LINK_DOWN,	/* exists but not up or not running */
	FG_NL_EV_LINK_DEL,	/* removed */
	FG_NL_EV_ADDR_ADD,	/* added or changed (e.g. DAD finished) */
	FG_NL_EV_ADDR_DEL,
	FG_NL_EV_NEIGH_CHANGE,	/* created, changed state or deleted */
	/* Notifications were lost (socket receive buffer overrun): state
	 * learned from events may be stale, re-dump everything. */
	FG_NL_EV_RESYNC,
};

struct fg_nl_event {
	enum fg_nl_event_type type;
	int ifindex;		/* 0 for RESYNC */
	int family;		/* ADDR/NEIGH: AF_INET or AF_INET6; else 0 */
	struct fg_addr addr;	/* ADDR: local address; NEIGH: neighbour */
	__u8 prefixlen;		/* ADDR only */
	__u16 nud_state;	/* NEIGH: NUD_* bits; NUD_NONE when deleted */
	char ifname[16];	/* LINK: interface name when known, else "" */
};

/* Called once per event. A non-zero return stops processing and is
 * returned by fg_nl_monitor_process(); events left in the datagram being
 * processed are then dropped, so the caller should re-dump before going
 * on. */
typedef int (*fg_nl_event_cb)(const struct fg_nl_event *ev, void *ctx);

struct fg_nl_monitor;

int fg_nl_monitor_open(struct fg_nl_monitor **out);
/* File descriptor to poll/epoll for readability. */
int fg_nl_monitor_fd(const struct fg_nl_monitor *mon);
/*
 * Reads every pending notification without blocking and calls @cb for
 * each event. A receive buffer overrun is reported as one RESYNC event.
 * Returns the number of events delivered, the callback's non-zero return
 * value, or a negative errno when reading failed.
 */
int fg_nl_monitor_process(struct fg_nl_monitor *mon, fg_nl_event_cb cb,
			  void *ctx);
void fg_nl_monitor_close(struct fg_nl_monitor *mon);

/* Name of an event type, for logs. */
const char *fg_nl_event_name(enum fg_nl_event_type type);

#endif /* FG_NETLINK_H */
