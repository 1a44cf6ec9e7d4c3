/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking: idle timeouts by state, and the rule that a TCP RST
 * removes the flow while a FIN shortens its timeout.
 */
#ifndef FG_BPF_CONNTRACK_H
#define FG_BPF_CONNTRACK_H

#include "common.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL

const volatile __u64 ct_timeout_syn_ns = 60 * NSEC_PER_SEC;
const volatile __u64 ct_timeout_tcp_ns = 7200 * NSEC_PER_SEC;
const volatile __u64 ct_timeout_fin_ns = 10 * NSEC_PER_SEC;
/* Both sides closed: the client tuple may open a new flow soon (its
 * conntrack entry stops counting). The SNAT port does NOT come back with
 * it: the backend may hold the tuple in TIME_WAIT for 60 s, and a SYN from
 * another client tuple on it is refused there (its timestamps and
 * sequence numbers are unrelated to the old flow's: Linux randomises both
 * per connection, so PAWS drops it and the client retransmits after a
 * second). The reverse_nat entry stays as the port's record of when it
 * closed; bpf/lib/snat.h rests the port snat_time_wait_ns. */
const volatile __u64 ct_timeout_closed_ns = 2 * NSEC_PER_SEC;
const volatile __u64 ct_timeout_udp_ns = 120 * NSEC_PER_SEC;
/* How stale last_seen may get before we write it again: saves a cache
 * line write per packet on busy flows. */
#define FG_CT_REFRESH_NS (NSEC_PER_SEC / 4)

/* Timeouts need no better than a few milliseconds: the coarse clock costs
 * a fraction of bpf_ktime_get_ns() on every packet. Both are
 * CLOCK_MONOTONIC based, which fleetgatectl compares ages against. */
static __always_inline __u64 fg_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline __u64 ct_timeout(__u8 proto, __u8 state)
{
	if (proto != FG_PROTO_TCP)
		return ct_timeout_udp_ns;
	switch (state) {
	case FG_CT_NEW:
		return ct_timeout_syn_ns;
	case FG_CT_CLOSING:
		return ct_timeout_fin_ns;
	case FG_CT_CLOSED:
		return ct_timeout_closed_ns;
	default:
		return ct_timeout_tcp_ns;
	}
}

static __always_inline bool ct_expired(__u64 last_seen, __u8 proto, __u8 state, __u64 now)
{
	return now > last_seen && now - last_seen > ct_timeout(proto, state);
}

static __always_inline __u8 ct_state_after_fins(__u8 fins)
{
	return fins == (FG_FIN_CLIENT | FG_FIN_BACKEND) ? FG_CT_CLOSED : FG_CT_CLOSING;
}

/* The backend-side tuple of a NATed flow (the reverse_nat key). */
static __always_inline void ct_reverse_key(struct fg_flow *rkey, const struct fg_backend *be,
					   const struct fg_addr *snat_addr, __be16 snat_port,
					   __u8 proto, __u8 family)
{
	__builtin_memset(rkey, 0, sizeof(*rkey));
	rkey->src = be->addr;
	rkey->sport = be->port;
	rkey->dst = *snat_addr;
	rkey->dport = snat_port;
	rkey->proto = proto;
	rkey->family = family;
}

#endif
