/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing. Every read is bounds-checked against data_end.
 *
 * The rule for bad packets: a frame shorter than its Ethernet/VLAN header, an
 * IP header that is cut short or inconsistent (version, IHL, total length
 * beyond the frame) and a TCP/UDP header cut short are dropped, since the
 * stack would discard them too; fragments, ICMP, unknown L4 protocols, more
 * than FG_MAX_VLAN tags and IPv6 extension chains longer than FG_IP6_MAX_EXT
 * are passed to the stack untouched. Every case is counted by reason.
 */
#ifndef FG_BPF_PARSE_H
#define FG_BPF_PARSE_H

#include "common.h"

struct fg_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* What the parser found. Offsets are from the start of the frame. */
struct fg_pkt {
	struct fg_flow flow;
	__u32 l3_off;
	__u32 l4_off;
	__u32 vlan_bytes; /* bytes of VLAN tags after the MAC addresses */
	__u32 len;        /* frame length (an skb's whole length, not only its
			   * linear part) */
	__u16 ip_tot_len; /* IPv4 total length / IPv6 payload length + 40 */
	__u8 tcp_flags;
	__u8 pad;
};

#define FG_TCP_FIN 0x01
#define FG_TCP_SYN 0x02
#define FG_TCP_RST 0x04
#define FG_TCP_ACK 0x10

/* Returns FG_R_MAX to continue, or the reason that decides the verdict. */
static __always_inline int parse_l4(void *pos, void *end, struct fg_pkt *pkt)
{
	switch (pkt->flow.proto) {
	case FG_PROTO_TCP: {
		struct tcphdr *th = pos;

		if ((void *)(th + 1) > end)
			return FG_R_TRUNC_L4;
		if (th->doff < 5)
			return FG_R_TRUNC_L4;
		pkt->flow.sport = th->source;
		pkt->flow.dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
		return FG_R_MAX;
	}
	case FG_PROTO_UDP: {
		struct udphdr *uh = pos;

		if ((void *)(uh + 1) > end)
			return FG_R_TRUNC_L4;
		pkt->flow.sport = uh->source;
		pkt->flow.dport = uh->dest;
		return FG_R_MAX;
	}
	case IPPROTO_ICMP_:
		return pkt->flow.family == FG_AF_INET ? FG_R_ICMP : FG_R_OTHER_L4;
	case NEXTHDR_ICMP:
		return pkt->flow.family == FG_AF_INET6 ? FG_R_ICMP : FG_R_OTHER_L4;
	default:
		return FG_R_OTHER_L4;
	}
}

/* A byte-swapped 16-bit field, bounded where every verifier sees it: 6.1
 * keeps no bounds through the byte-swap instruction, and then refuses the
 * packet-pointer arithmetic that follows. */
static __always_inline __u32 fg_ntohs_bounded(__u16 v)
{
	__u32 r = bpf_ntohs(v);

	asm volatile("%[r] &= 0xffff" : [r] "+r"(r));
	return r;
}

static __always_inline int parse_ipv4(void *data, void *pos, void *end,
				      struct fg_pkt *pkt)
{
	__u32 off = pos - data;
	struct iphdr *iph = pos;
	__u32 hdr_len;
	__u16 tot_len;

	if ((void *)(iph + 1) > end)
		return FG_R_TRUNC_IP;
	if (iph->version != 4 || iph->ihl < 5)
		return FG_R_BAD_IP;
	hdr_len = (iph->ihl * 4) & 0x3c;
	if (pos + hdr_len > end)
		return FG_R_TRUNC_IP;
	tot_len = fg_ntohs_bounded(iph->tot_len);
	if (tot_len < hdr_len)
		return FG_R_BAD_IP;
	/* Against the whole length: an skb's payload may be in fragments
	 * beyond data_end, headers never are (the TC entry pulls them). */
	if (off + tot_len > pkt->len)
		return FG_R_TRUNC_IP;
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return FG_R_FRAGMENT;

	pkt->flow.family = FG_AF_INET;
	pkt->flow.proto = iph->protocol;
	pkt->flow.src.v4 = iph->saddr;
	pkt->flow.dst.v4 = iph->daddr;
	pkt->l3_off = pos - data;
	pkt->l4_off = pkt->l3_off + hdr_len;
	pkt->ip_tot_len = tot_len;
	return parse_l4(pos + hdr_len, end, pkt);
}

struct fg_ip6_opt {
	__u8 nexthdr;
	__u8 hdrlen;
};

static __always_inline int parse_ipv6(void *data, void *pos, void *end,
				      struct fg_pkt *pkt)
{
	struct ipv6hdr *ip6h = pos;
	__u8 nexthdr;
	int i;

	if ((void *)(ip6h + 1) > end)
		return FG_R_TRUNC_IP;
	if (ip6h->version != 6)
		return FG_R_BAD_IP;
	if ((__u32)(pos - data) + sizeof(*ip6h) + fg_ntohs_bounded(ip6h->payload_len) > pkt->len)
		return FG_R_TRUNC_IP;

	pkt->flow.family = FG_AF_INET6;
	__builtin_memcpy(&pkt->flow.src, &ip6h->saddr, 16);
	__builtin_memcpy(&pkt->flow.dst, &ip6h->daddr, 16);
	pkt->l3_off = pos - data;
	pkt->ip_tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	nexthdr = ip6h->nexthdr;
	pos += sizeof(*ip6h);

#pragma unroll
	for (i = 0; i < FG_IP6_MAX_EXT; i++) {
		struct fg_ip6_opt *opt = pos;

		switch (nexthdr) {
		case NEXTHDR_HOP:
		case NEXTHDR_ROUTING:
		case NEXTHDR_DEST:
			if ((void *)(opt + 1) > end)
				return FG_R_TRUNC_IP;
			nexthdr = opt->nexthdr;
			pos += ((__u32)opt->hdrlen + 1) * 8;
			continue;
		case NEXTHDR_AUTH:
			if ((void *)(opt + 1) > end)
				return FG_R_TRUNC_IP;
			nexthdr = opt->nexthdr;
			pos += ((__u32)opt->hdrlen + 2) * 4;
			continue;
		case NEXTHDR_FRAGMENT:
			return FG_R_FRAGMENT;
		case NEXTHDR_NONE:
			return FG_R_OTHER_L4;
		default:
			goto done;
		}
	}
	/* Still an extension header after the bound: leave it to the stack. */
	if (nexthdr == NEXTHDR_HOP || nexthdr == NEXTHDR_ROUTING ||
	    nexthdr == NEXTHDR_DEST || nexthdr == NEXTHDR_AUTH ||
	    nexthdr == NEXTHDR_FRAGMENT)
		return FG_R_IP6_EXT_LIMIT;
done:
	if (pos > end)
		return FG_R_TRUNC_IP;
	/* The NAT code addresses L4 with a masked offset the verifier can
	 * bound; longer chains are the stack's business. */
	if (pos - data > FG_MAX_L4_OFF)
		return FG_R_IP6_EXT_LIMIT;
	pkt->flow.proto = nexthdr;
	pkt->l4_off = pos - data;
	return parse_l4(pos, end, pkt);
}

/* Parses a frame of len bytes whose first end - data bytes are at data
 * (all of them for XDP; an skb's linear part for TC); returns FG_R_MAX
 * when it is TCP/UDP over IP, otherwise the reason deciding its verdict. A
 * header that is not within [data, end) reads as cut short. */
static __always_inline int parse_packet(void *data, void *end, __u32 len, struct fg_pkt *pkt)
{
	struct ethhdr *eth = data;
	void *pos;
	__be16 proto;
	int i;

	pkt->len = len;
	if ((void *)(eth + 1) > end)
		return FG_R_TRUNC_ETH;
	proto = eth->h_proto;
	pos = eth + 1;

#pragma unroll
	for (i = 0; i < FG_MAX_VLAN; i++) {
		struct fg_vlan_hdr *vh = pos;

		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return FG_R_TRUNC_ETH;
		proto = vh->encap_proto;
		pos = vh + 1;
		pkt->vlan_bytes += sizeof(*vh);
	}

	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, pos, end, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, pos, end, pkt);
	return FG_R_NOT_IP;
}

#endif
