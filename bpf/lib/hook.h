/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The two attach points of the gateway program, and what differs between
 * them. Everything else (parsing, lookups, balancing, conntrack, SNAT) is
 * one code path working on the packet's data/data_end pointers and its
 * length; the entry points (bpf/xdp_gateway.bpf.c) and the few functions
 * below take `hook`, a compile-time constant after inlining, so each
 * program only contains its own branch.
 *
 *                  XDP (struct xdp_md)          TC ingress (struct __sk_buff)
 *   length         data_end - data              skb->len (may be nonlinear:
 *                                               headers are pulled first)
 *   ingress dev    ingress_ifindex              ifindex
 *   pass / drop    XDP_PASS / XDP_DROP          TC_ACT_OK / TC_ACT_SHOT
 *   redirect       bpf_redirect -> XDP_REDIRECT bpf_redirect -> TC_ACT_REDIRECT
 *                                               (to the egress of the device)
 *   NAT writes     direct, checksums folded     bpf_skb_store_bytes and
 *                  incrementally                bpf_l3/l4_csum_replace, which
 *                                               know the skb's checksum state
 *                                               (CHECKSUM_PARTIAL from a local
 *                                               stack on a veth: the L4 field
 *                                               holds the pseudo-header sum)
 *   VLAN tags      bpf_xdp_adjust_head          bpf_skb_vlan_pop (the outer
 *                                               tag is usually already in
 *                                               skb->vlan_tci)
 *
 * The TC path never writes packet data directly: a program that does gets
 * a prologue from the verifier that unclones every skb it sees (a copy of
 * the head for each TCP segment from a local socket, passed or not). The
 * helpers make the skb writable only when a packet is really rewritten.
 */
#ifndef FG_BPF_HOOK_H
#define FG_BPF_HOOK_H

#include "common.h"

#define FG_HOOK_XDP 0
#define FG_HOOK_TC  1

#define TC_ACT_OK       0
#define TC_ACT_SHOT     2
#define TC_ACT_REDIRECT 7

/* What the shared code decides; the entry point turns it into its hook's
 * return value. */
enum fg_act {
	FG_ACT_PASS = 0,
	FG_ACT_DROP = 1,
	FG_ACT_REDIRECT = 2, /* to fg_out.ifindex */
};

/* How much of a TC packet is made linear before parsing: Ethernet, two
 * VLAN tags, IPv4 with options or IPv6, TCP with options. A packet whose
 * headers go beyond (long IPv6 extension chains) is pulled further. */
#define FG_TC_PULL     192
#define FG_TC_PULL_MAX (FG_MAX_L4_OFF + 1 + 60)

static __always_inline void *hook_data(void *ctx, const int hook)
{
	if (hook == FG_HOOK_TC)
		return (void *)(long)((struct __sk_buff *)ctx)->data;
	return (void *)(long)((struct xdp_md *)ctx)->data;
}

static __always_inline void *hook_data_end(void *ctx, const int hook)
{
	if (hook == FG_HOOK_TC)
		return (void *)(long)((struct __sk_buff *)ctx)->data_end;
	return (void *)(long)((struct xdp_md *)ctx)->data_end;
}

/* The device the packet came in on: where bpf_fib_lookup starts. */
static __always_inline __u32 hook_ingress_ifindex(void *ctx, const int hook)
{
	if (hook == FG_HOOK_TC)
		return ((struct __sk_buff *)ctx)->ifindex;
	return ((struct xdp_md *)ctx)->ingress_ifindex;
}

#endif
