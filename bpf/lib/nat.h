/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rewriting a parsed packet's addresses and ports (full NAT), with the IPv4
 * header checksum and the TCP/UDP checksum fixed incrementally, and the
 * Ethernet header rebuilt for the next hop (VLAN tags of the ingress side
 * are removed: the egress side is untagged).
 */
#ifndef FG_BPF_NAT_H
#define FG_BPF_NAT_H

#include "common.h"
#include "csum.h"
#include "parse.h"

struct fg_rewrite {
	struct fg_addr saddr;
	struct fg_addr daddr;
	__be16 sport;
	__be16 dport;
};

static __always_inline int nat_l4(void *data, void *end, const struct fg_pkt *pkt,
				  const struct fg_rewrite *rw, __u32 addr_acc)
{
	__u32 acc = addr_acc;
	void *l4 = data + (pkt->l4_off & FG_MAX_L4_OFF);

	if (pkt->flow.proto == FG_PROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return -1;
		acc = csum_acc_half(acc, th->source, rw->sport);
		acc = csum_acc_half(acc, th->dest, rw->dport);
		th->source = rw->sport;
		th->dest = rw->dport;
		th->check = csum_apply(th->check, acc);
		return 0;
	}
	if (pkt->flow.proto == FG_PROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return -1;
		acc = csum_acc_half(acc, uh->source, rw->sport);
		acc = csum_acc_half(acc, uh->dest, rw->dport);
		uh->source = rw->sport;
		uh->dest = rw->dport;
		/* IPv4 UDP may carry no checksum (0): keep it that way. */
		if (uh->check || pkt->flow.family == FG_AF_INET6) {
			uh->check = csum_apply(uh->check, acc);
			if (!uh->check)
				uh->check = 0xffff;
		}
		return 0;
	}
	return -1;
}

/* Rewrites L3/L4 of the packet in place. Returns 0, or -1 when the packet
 * no longer fits what the parser saw (cannot happen unless modified). */
static __always_inline int nat_rewrite(struct xdp_md *ctx, const struct fg_pkt *pkt,
				       const struct fg_rewrite *rw)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	void *l3 = data + (pkt->l3_off & 0xff);
	__u32 acc = 0;

	if (pkt->flow.family == FG_AF_INET) {
		struct iphdr *iph = l3;
		__u32 ip_acc = 0;

		if ((void *)(iph + 1) > end)
			return -1;
		ip_acc = csum_acc_word(ip_acc, iph->saddr, rw->saddr.v4);
		ip_acc = csum_acc_word(ip_acc, iph->daddr, rw->daddr.v4);
		iph->saddr = rw->saddr.v4;
		iph->daddr = rw->daddr.v4;
		iph->check = csum_apply(iph->check, ip_acc);
		/* The TCP/UDP pseudo-header holds the same addresses. */
		acc = ip_acc;
	} else {
		struct ipv6hdr *ip6h = l3;

		if ((void *)(ip6h + 1) > end)
			return -1;
		acc = csum_acc_addr(acc, &pkt->flow.src, &rw->saddr, 4);
		acc = csum_acc_addr(acc, &pkt->flow.dst, &rw->daddr, 4);
		__builtin_memcpy(&ip6h->saddr, &rw->saddr, 16);
		__builtin_memcpy(&ip6h->daddr, &rw->daddr, 16);
	}
	return nat_l4(data, end, pkt, rw, acc);
}

/* Removes VLAN tags (if any) and writes a fresh Ethernet header for the
 * next hop. */
static __always_inline int eth_rewrite(struct xdp_md *ctx, const struct fg_pkt *pkt,
				       const struct fg_nexthop *nh)
{
	struct ethhdr *eth;
	void *data, *end;
	__u32 vlan = pkt->vlan_bytes & 0xf;

	if (vlan && bpf_xdp_adjust_head(ctx, (int)vlan))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	eth->h_proto = pkt->flow.family == FG_AF_INET ? bpf_htons(ETH_P_IP)
						       : bpf_htons(ETH_P_IPV6);
	return 0;
}

#endif
