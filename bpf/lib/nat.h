/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rewriting a parsed packet's addresses and ports (full NAT), with the IPv4
 * header checksum and the TCP/UDP checksum fixed incrementally, and the
 * Ethernet header rebuilt for the next hop (VLAN tags of the ingress side
 * are removed: the egress side is untagged). One version per hook
 * (bpf/lib/hook.h): XDP writes the frame directly, TC through helpers.
 */
#ifndef FG_BPF_NAT_H
#define FG_BPF_NAT_H

#include "common.h"
#include "csum.h"
#include "parse.h"
#include "hook.h"

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
static __always_inline int nat_rewrite_xdp(struct xdp_md *ctx, const struct fg_pkt *pkt,
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
static __always_inline int eth_rewrite_xdp(struct xdp_md *ctx, const struct fg_pkt *pkt,
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

/*
 * TC: the same rewrite through helpers. The checksum changes are computed
 * from the flow's old and new values (the packet is not read again) and
 * handed to bpf_l3_csum_replace / bpf_l4_csum_replace as diffs, which
 * apply them according to the skb's checksum state: for CHECKSUM_PARTIAL
 * (a local socket's packet on a veth, or any GSO packet) the L4 field holds
 * the pseudo-header sum, so only the address change (BPF_F_PSEUDO_HDR)
 * goes there and the ports are summed when the checksum is finished; for
 * CHECKSUM_COMPLETE, skb->csum follows the pseudo-header change.
 */
static __always_inline int nat_rewrite_tc(struct __sk_buff *skb, const struct fg_pkt *pkt,
					  const struct fg_rewrite *rw)
{
	__u32 l3 = pkt->l3_off & 0xff, l4 = pkt->l4_off & FG_MAX_L4_OFF;
	__u32 addr_acc = 0, port_acc = 0, csum_off;
	__u64 flags = 0;

	if (pkt->flow.proto == FG_PROTO_TCP) {
		csum_off = l4 + offsetof(struct tcphdr, check);
	} else if (pkt->flow.proto == FG_PROTO_UDP) {
		csum_off = l4 + offsetof(struct udphdr, check);
		/* IPv4 UDP may carry no checksum (0): keep it that way; a
		 * result of 0 is sent as 0xffff. IPv6 UDP always has one. */
		flags = BPF_F_MARK_MANGLED_0;
		if (pkt->flow.family == FG_AF_INET6)
			flags |= BPF_F_MARK_ENFORCE;
	} else {
		return -1;
	}
	if (pkt->flow.family == FG_AF_INET) {
		/* saddr and daddr in a row: one store */
		__be32 addrs[2] = { rw->saddr.v4, rw->daddr.v4 };

		addr_acc = csum_acc_word(addr_acc, pkt->flow.src.v4, rw->saddr.v4);
		addr_acc = csum_acc_word(addr_acc, pkt->flow.dst.v4, rw->daddr.v4);
		if (bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), 0, addr_acc, 0) ||
		    bpf_skb_store_bytes(skb, l3 + offsetof(struct iphdr, saddr), addrs,
					sizeof(addrs), 0))
			return -1;
	} else {
		addr_acc = csum_acc_addr(addr_acc, &pkt->flow.src, &rw->saddr, 4);
		addr_acc = csum_acc_addr(addr_acc, &pkt->flow.dst, &rw->daddr, 4);
		if (bpf_skb_store_bytes(skb, l3 + offsetof(struct ipv6hdr, saddr), &rw->saddr, 16, 0) ||
		    bpf_skb_store_bytes(skb, l3 + offsetof(struct ipv6hdr, daddr), &rw->daddr, 16, 0))
			return -1;
	}
	port_acc = csum_acc_half(port_acc, pkt->flow.sport, rw->sport);
	port_acc = csum_acc_half(port_acc, pkt->flow.dport, rw->dport);
	if (bpf_l4_csum_replace(skb, csum_off, 0, addr_acc, flags | BPF_F_PSEUDO_HDR) ||
	    bpf_l4_csum_replace(skb, csum_off, 0, port_acc, flags) ||
	    /* sport and dport, in a row as on the wire */
	    bpf_skb_store_bytes(skb, l4, &rw->sport, 2 * sizeof(__be16), 0))
		return -1;
	return 0;
}

/* TC: removes every VLAN tag (the one the device already took into
 * skb->vlan_tci and any left in the data) and writes the next hop's
 * Ethernet header. */
static __always_inline int eth_rewrite_tc(struct __sk_buff *skb, const struct fg_pkt *pkt,
					  const struct fg_nexthop *nh)
{
	struct ethhdr eth;
	int i;

#pragma unroll
	for (i = 0; i < FG_MAX_VLAN + 1; i++) {
		if (!skb->vlan_present && skb->protocol != bpf_htons(ETH_P_8021Q) &&
		    skb->protocol != bpf_htons(ETH_P_8021AD))
			break;
		if (bpf_skb_vlan_pop(skb))
			return -1;
	}
	__builtin_memcpy(eth.h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, nh->smac, ETH_ALEN);
	eth.h_proto = pkt->flow.family == FG_AF_INET ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
	return bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ? -1 : 0;
}

static __always_inline int nat_rewrite(void *ctx, const struct fg_pkt *pkt,
				       const struct fg_rewrite *rw, const int hook)
{
	if (hook == FG_HOOK_TC)
		return nat_rewrite_tc(ctx, pkt, rw);
	return nat_rewrite_xdp(ctx, pkt, rw);
}

static __always_inline int eth_rewrite(void *ctx, const struct fg_pkt *pkt,
				       const struct fg_nexthop *nh, const int hook)
{
	if (hook == FG_HOOK_TC)
		return eth_rewrite_tc(ctx, pkt, nh);
	return eth_rewrite_xdp(ctx, pkt, nh);
}

#endif
