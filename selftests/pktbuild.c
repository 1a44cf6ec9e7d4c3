// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet builder and checker for the packet tests (see pktbuild.h).
 *
 * Multi-byte fields are written byte by byte in network order rather than
 * through the libc header structs: the output must be exact and alignment
 * free, whatever offset VLAN tags and IP options leave the headers at.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pktbuild.h"

#define IPV4_HLEN 20
#define IPV6_HLEN 40
#define TCP_HLEN  20
#define UDP_HLEN  8
#define ICMP_HLEN 8
#define FRAG_HLEN 8

static const uint8_t default_src_mac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t default_dst_mac[6] = { 0x02, 0, 0, 0, 0, 0x02 };

/* ---- checksums ---- */

/* Sums big-endian 16-bit words; an odd tail byte is the high half of a
 * word, as RFC 1071 pads. 64 bits cannot overflow for any frame. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint16_t pkt_inet_csum(const void *buf, size_t len)
{
	return csum_fold(csum_add(0, buf, len));
}

static uint64_t pseudo_sum(int family, const uint8_t *src, const uint8_t *dst,
			   uint8_t proto, size_t l4_len)
{
	size_t alen = family == 4 ? 4 : 16;
	uint64_t sum = 0;

	sum = csum_add(sum, src, alen);
	sum = csum_add(sum, dst, alen);
	/* Both layouts reduce to these two words once zeros are dropped. */
	sum += proto;
	sum += l4_len & 0xffff;
	sum += l4_len >> 16;
	return sum;
}

/* ---- byte writers ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* ---- addresses ---- */

int pkt_addr_parse(const char *str, uint8_t addr[16], uint8_t *af)
{
	memset(addr, 0, 16);
	if (!str)
		return -EINVAL;
	if (inet_pton(AF_INET, str, addr) == 1) {
		if (af)
			*af = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, str, addr) == 1) {
		if (af)
			*af = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* ---- building ---- */

struct builder {
	const struct pkt_spec *s;
	int family;
	uint8_t src[16], dst[16];
	int nr_ext;
	size_t ext_len;     /* IPv6 extension headers, bytes */
	size_t ip_hlen;     /* IPv4 header incl. options, or IPv6 fixed */
	size_t l4_hlen;     /* 0 for later fragments and other protocols */
	bool later_frag;
};

static int fail(const char *why)
{
	fprintf(stderr, "pkt_build: %s\n", why);
	return -EINVAL;
}

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static size_t ext_size(const struct pkt_ext *e)
{
	if (e->type == PKT_EXT_FRAG)
		return FRAG_HLEN;
	return e->len ? e->len : 8;
}

static uint8_t ext_proto(enum pkt_ext_type t)
{
	switch (t) {
	case PKT_EXT_HOP:
		return IPPROTO_HOPOPTS;
	case PKT_EXT_ROUTING:
		return IPPROTO_ROUTING;
	case PKT_EXT_DEST:
		return IPPROTO_DSTOPTS;
	default:
		return IPPROTO_FRAGMENT;
	}
}

static int resolve_family(struct builder *b)
{
	const struct pkt_spec *s = b->s;
	uint8_t saf, daf;

	if (pkt_addr_parse(s->src, b->src, &saf))
		return fail("bad src address");
	if (pkt_addr_parse(s->dst, b->dst, &daf))
		return fail("bad dst address");
	if (saf != daf)
		return fail("src and dst of different families");
	b->family = saf == AF_INET ? 4 : 6;
	switch (s->family) {
	case 0:
		return 0;
	case 4:
	case AF_INET:
		return b->family == 4 ? 0 : fail("family 4 with IPv6 address");
	case 6:
	case AF_INET6:
		return b->family == 6 ? 0 : fail("family 6 with IPv4 address");
	default:
		return fail("bad family");
	}
}

static int plan_l3(struct builder *b)
{
	const struct pkt_spec *s = b->s;
	int i;

	if (b->family == 4) {
		if (s->ip_opts_len > PKT_MAX_IP_OPTS)
			return fail("IPv4 options too long");
		if (s->ext[0].type != PKT_EXT_NONE)
			return fail("extension headers on IPv4");
		b->ip_hlen = IPV4_HLEN + round_up(s->ip_opts_len, 4);
		b->later_frag = s->frag_off != 0;
		return 0;
	}

	if (s->ip_opts_len || s->df || s->mf || s->frag_off)
		return fail("IPv4 options/fragment fields on IPv6");
	b->ip_hlen = IPV6_HLEN;
	for (i = 0; i < PKT_MAX_EXTS && s->ext[i].type != PKT_EXT_NONE; i++) {
		const struct pkt_ext *e = &s->ext[i];

		if (e->type > PKT_EXT_FRAG)
			return fail("bad extension header type");
		if (e->type != PKT_EXT_FRAG &&
		    (ext_size(e) % 8 || ext_size(e) > 2048))
			return fail("extension header length not 8*n <= 2048");
		if (e->type == PKT_EXT_FRAG && e->frag_off)
			b->later_frag = true;
		b->ext_len += ext_size(e);
	}
	b->nr_ext = i;
	return 0;
}

static int plan_l4(struct builder *b)
{
	const struct pkt_spec *s = b->s;

	if (b->later_frag)
		return 0;
	switch (s->proto) {
	case IPPROTO_TCP:
		if (s->tcp_opts_len > PKT_MAX_TCP_OPTS)
			return fail("TCP options too long");
		b->l4_hlen = TCP_HLEN + round_up(s->tcp_opts_len, 4);
		break;
	case IPPROTO_UDP:
		b->l4_hlen = UDP_HLEN;
		break;
	case IPPROTO_ICMP:
		if (b->family != 4)
			return fail("ICMP over IPv6 (use IPPROTO_ICMPV6)");
		b->l4_hlen = ICMP_HLEN;
		break;
	case IPPROTO_ICMPV6:
		if (b->family != 6)
			return fail("ICMPv6 over IPv4");
		b->l4_hlen = ICMP_HLEN;
		break;
	default:
		break;
	}
	return 0;
}

static size_t build_l2(const struct pkt_spec *s, uint8_t *p, uint16_t type)
{
	static const uint8_t zero[6];
	size_t off = 12;
	int i;

	memcpy(p, memcmp(s->eth_dst, zero, 6) ? s->eth_dst : default_dst_mac, 6);
	memcpy(p + 6, memcmp(s->eth_src, zero, 6) ? s->eth_src : default_src_mac,
	       6);
	for (i = 0; i < PKT_MAX_VLANS && s->vlan[i].tpid; i++) {
		put16(p + off, s->vlan[i].tpid);
		put16(p + off + 2, (uint16_t)((s->vlan[i].pcp & 7) << 13 |
					      (s->vlan[i].vid & 0xfff)));
		off += 4;
	}
	put16(p + off, type);
	return off + 2;
}

static size_t l2_len(const struct pkt_spec *s)
{
	size_t len = ETH_HLEN;
	int i;

	if (s->l3_only)
		return 0;
	for (i = 0; i < PKT_MAX_VLANS && s->vlan[i].tpid; i++)
		len += 4;
	return len;
}

static void build_ipv4(const struct builder *b, uint8_t *p, size_t l4_len)
{
	const struct pkt_spec *s = b->s;
	uint16_t frag = s->frag_off & 0x1fff;
	uint16_t csum;

	memset(p, 0, b->ip_hlen);
	p[0] = 0x40 | (uint8_t)(b->ip_hlen / 4);
	p[1] = s->tos;
	put16(p + 2, (uint16_t)(b->ip_hlen + l4_len));
	put16(p + 4, s->ip_id);
	if (s->df)
		frag |= IP_DF;
	if (s->mf)
		frag |= IP_MF;
	put16(p + 6, frag);
	p[8] = s->ttl ? s->ttl : 64;
	p[9] = s->proto;
	memcpy(p + 12, b->src, 4);
	memcpy(p + 16, b->dst, 4);
	memcpy(p + IPV4_HLEN, s->ip_opts, s->ip_opts_len);
	csum = pkt_inet_csum(p, b->ip_hlen);
	put16(p + 10, s->bad_ip_csum ? csum ^ 1 : csum);
}

static size_t build_ipv6_ext(const struct pkt_ext *e, uint8_t *p, uint8_t next)
{
	size_t len = ext_size(e);

	memset(p, 0, len);
	p[0] = next;
	if (e->type == PKT_EXT_FRAG) {
		put16(p + 2, (uint16_t)((e->frag_off & 0x1fff) << 3 |
					(e->more ? 1 : 0)));
		put32(p + 4, e->frag_id);
		return len;
	}
	p[1] = (uint8_t)(len / 8 - 1);
	if (e->type == PKT_EXT_ROUTING) {
		p[2] = e->rt_type;
		p[3] = e->segs_left;
	}
	return len;
}

static void build_ipv6(const struct builder *b, uint8_t *p, size_t l4_len)
{
	const struct pkt_spec *s = b->s;
	size_t off = IPV6_HLEN;
	uint8_t next;
	int i;

	put32(p, 6u << 28 | (uint32_t)s->tos << 20 | (s->flow_label & 0xfffff));
	put16(p + 4, (uint16_t)(b->ext_len + l4_len));
	p[6] = b->nr_ext ? ext_proto(s->ext[0].type) : s->proto;
	p[7] = s->ttl ? s->ttl : 64;
	memcpy(p + 8, b->src, 16);
	memcpy(p + 24, b->dst, 16);
	for (i = 0; i < b->nr_ext; i++) {
		next = i + 1 < b->nr_ext ? ext_proto(s->ext[i + 1].type)
					 : s->proto;
		off += build_ipv6_ext(&s->ext[i], p + off, next);
	}
}

/* Writes the L4 header in front of the payload already at p + l4_hlen,
 * then the checksum over both. */
static void build_l4(const struct builder *b, uint8_t *p, size_t l4_len)
{
	const struct pkt_spec *s = b->s;
	size_t csum_at;
	uint64_t sum;
	uint16_t csum;
	size_t i;

	memset(p, 0, b->l4_hlen);
	switch (s->proto) {
	case IPPROTO_TCP:
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put32(p + 4, s->seq);
		put32(p + 8, s->ack);
		p[12] = (uint8_t)(b->l4_hlen / 4) << 4;
		p[13] = s->tcp_flags;
		put16(p + 14, s->window ? s->window : 64240);
		memcpy(p + TCP_HLEN, s->tcp_opts, s->tcp_opts_len);
		for (i = TCP_HLEN + s->tcp_opts_len; i < b->l4_hlen; i++)
			p[i] = TCPOPT_NOP;
		csum_at = 16;
		break;
	case IPPROTO_UDP:
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put16(p + 4, (uint16_t)l4_len);
		csum_at = 6;
		break;
	default: /* ICMP, ICMPv6 */
		p[0] = s->icmp_type;
		p[1] = s->icmp_code;
		put16(p + 4, s->icmp_id);
		put16(p + 6, s->icmp_seq);
		csum_at = 2;
		break;
	}

	sum = s->proto == IPPROTO_ICMP ? 0 :
	      pseudo_sum(b->family, b->src, b->dst, s->proto, l4_len);
	csum = csum_fold(csum_add(sum, p, l4_len));
	/* Zero means "no checksum" to UDP, so a real zero is sent as its
	 * ones' complement twin. */
	if (s->proto == IPPROTO_UDP && csum == 0)
		csum = 0xffff;
	put16(p + csum_at, s->bad_l4_csum ? csum ^ 1 : csum);
}

static size_t build_non_ip(const struct pkt_spec *s, uint8_t *buf, size_t cap)
{
	size_t l2 = l2_len(s), len = l2 + s->payload_len;

	if (s->l3_only) {
		fail("l3_only without addresses");
		return 0;
	}
	if (len > cap) {
		fail("buffer too small");
		return 0;
	}
	build_l2(s, buf, s->eth_proto);
	if (s->payload_len)
		memcpy(buf + l2, s->payload, s->payload_len);
	return len;
}

size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap)
{
	struct builder b = { .s = s };
	size_t l2, l3_off, l4_off, l4_len, len;

	if (s->payload_len && !s->payload) {
		fail("payload_len without payload");
		return 0;
	}
	if (!s->src)
		return build_non_ip(s, buf, cap);
	if (resolve_family(&b) || plan_l3(&b) || plan_l4(&b))
		return 0;

	l2 = l2_len(s);
	l3_off = l2;
	l4_off = l3_off + b.ip_hlen + b.ext_len;
	l4_len = b.l4_hlen + s->payload_len;
	len = l4_off + l4_len;
	if (len > cap) {
		fail("buffer too small");
		return 0;
	}
	if (len - l3_off > 0xffff + (b.family == 6 ? IPV6_HLEN : 0)) {
		fail("IP packet longer than 64k");
		return 0;
	}

	if (!s->l3_only)
		build_l2(s, buf, b.family == 4 ? ETH_P_IP : ETH_P_IPV6);
	if (b.family == 4)
		build_ipv4(&b, buf + l3_off, l4_len);
	else
		build_ipv6(&b, buf + l3_off, l4_len);
	if (s->payload_len)
		memcpy(buf + l4_off + b.l4_hlen, s->payload, s->payload_len);
	if (b.l4_hlen)
		build_l4(&b, buf + l4_off, l4_len);

	if (s->truncate_to && s->truncate_to < len)
		len = s->truncate_to;
	return len;
}

/* ---- parsing ---- */

static int parse_l4(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	const uint8_t *p = buf + o->l4_off;
	size_t avail = len - o->l4_off, hlen;

	switch (o->proto) {
	case IPPROTO_TCP:
		if (avail < TCP_HLEN)
			return -EMSGSIZE;
		hlen = (size_t)(p[12] >> 4) * 4;
		if (hlen < TCP_HLEN)
			return -EBADMSG;
		if (avail < hlen)
			return -EMSGSIZE;
		o->sport = get16(p);
		o->dport = get16(p + 2);
		o->seq = get32(p + 4);
		o->ack = get32(p + 8);
		o->tcp_flags = p[13];
		break;
	case IPPROTO_UDP:
		if (avail < UDP_HLEN)
			return -EMSGSIZE;
		hlen = UDP_HLEN;
		o->sport = get16(p);
		o->dport = get16(p + 2);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (avail < ICMP_HLEN)
			return -EMSGSIZE;
		hlen = ICMP_HLEN;
		o->icmp_type = p[0];
		o->icmp_code = p[1];
		break;
	default:
		hlen = 0;
		break;
	}
	o->payload_off = o->l4_off + hlen;
	return 0;
}

static int parse_ipv4(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	const uint8_t *p = buf + o->l3_off;
	size_t avail = len - o->l3_off;
	uint16_t frag;

	if (avail < IPV4_HLEN)
		return -EMSGSIZE;
	o->ip_hdr_len = (size_t)(p[0] & 0xf) * 4;
	if (p[0] >> 4 != 4 || o->ip_hdr_len < IPV4_HLEN)
		return -EBADMSG;
	if (avail < o->ip_hdr_len)
		return -EMSGSIZE;
	o->family = 4;
	o->tos = p[1];
	o->l3_len = get16(p + 2);
	frag = get16(p + 6);
	o->more_frags = frag & IP_MF;
	o->frag_off = frag & IP_OFFMASK;
	o->frag = o->more_frags || o->frag_off;
	o->ttl = p[8];
	o->proto = p[9];
	memcpy(o->src, p + 12, 4);
	memcpy(o->dst, p + 16, 4);
	if (o->l3_len < o->ip_hdr_len)
		return -EBADMSG;
	return 0;
}

static bool is_ext_hdr(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH;
}

static int parse_ipv6(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	const uint8_t *p = buf + o->l3_off;
	size_t off = IPV6_HLEN, elen;
	uint8_t nh;

	if (len - o->l3_off < IPV6_HLEN)
		return -EMSGSIZE;
	if (p[0] >> 4 != 6)
		return -EBADMSG;
	o->family = 6;
	o->tos = (uint8_t)(get16(p) >> 4);
	o->l3_len = IPV6_HLEN + get16(p + 4);
	nh = p[6];
	o->ttl = p[7];
	memcpy(o->src, p + 8, 16);
	memcpy(o->dst, p + 24, 16);

	while (is_ext_hdr(nh)) {
		if (o->nr_ext >= (int)sizeof(o->ext_proto))
			return -EBADMSG;
		if (o->l3_off + off + 8 > len)
			return -EMSGSIZE;
		if (nh == IPPROTO_FRAGMENT) {
			elen = FRAG_HLEN;
			o->frag = true;
			o->frag_off = get16(p + off + 2) >> 3;
			o->more_frags = get16(p + off + 2) & 1;
		} else if (nh == IPPROTO_AH) {
			elen = ((size_t)p[off + 1] + 2) * 4;
		} else {
			elen = ((size_t)p[off + 1] + 1) * 8;
		}
		o->ext_proto[o->nr_ext++] = nh;
		nh = p[off];
		off += elen;
	}
	if (o->l3_off + off > len)
		return -EMSGSIZE;
	o->ip_hdr_len = off;
	o->proto = nh;
	if (o->l3_len < o->ip_hdr_len)
		return -EBADMSG;
	return 0;
}

static int parse_from_l3(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	size_t end;
	int err;

	err = o->family == 4 ? parse_ipv4(buf, len, o) : parse_ipv6(buf, len, o);
	if (err)
		return err;
	/* Later fragments carry the middle of the datagram, no header. */
	if (o->frag_off) {
		o->payload_off = o->l3_off + o->ip_hdr_len;
	} else {
		o->l4_off = o->l3_off + o->ip_hdr_len;
		err = parse_l4(buf, len, o);
		if (err)
			return err;
	}
	end = o->l3_off + o->l3_len;
	if (end > len)
		end = len;
	o->payload_len = end > o->payload_off ? end - o->payload_off : 0;
	return 0;
}

int pkt_parse(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	size_t off = 12;

	memset(o, 0, sizeof(*o));
	if (len < ETH_HLEN)
		return -EMSGSIZE;
	memcpy(o->eth_dst, buf, 6);
	memcpy(o->eth_src, buf + 6, 6);
	o->eth_proto = get16(buf + off);
	while ((o->eth_proto == PKT_TPID_8021Q ||
		o->eth_proto == PKT_TPID_8021AD) &&
	       o->nr_vlans < PKT_MAX_VLANS) {
		if (off + 6 > len)
			return -EMSGSIZE;
		o->vlan[o->nr_vlans].tpid = o->eth_proto;
		o->vlan[o->nr_vlans].vid = get16(buf + off + 2) & 0xfff;
		o->vlan[o->nr_vlans].pcp = buf[off + 2] >> 5;
		o->nr_vlans++;
		off += 4;
		o->eth_proto = get16(buf + off);
	}
	o->l3_off = off + 2;
	if (o->eth_proto == ETH_P_IP)
		o->family = 4;
	else if (o->eth_proto == ETH_P_IPV6)
		o->family = 6;
	else
		return 0;
	return parse_from_l3(buf, len, o);
}

int pkt_parse_l3(const uint8_t *buf, size_t len, struct pkt_info *o)
{
	memset(o, 0, sizeof(*o));
	if (!len)
		return -EMSGSIZE;
	o->family = buf[0] >> 4;
	if (o->family != 4 && o->family != 6)
		return -EBADMSG;
	return parse_from_l3(buf, len, o);
}

/* ---- checking ---- */

static bool why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return false;
}

static bool l4_csum_ok(const uint8_t *buf, const struct pkt_info *o,
		       char *why, size_t whylen)
{
	const uint8_t *l4 = buf + o->l4_off;
	size_t l4_len = o->l3_len - o->ip_hdr_len;
	uint64_t sum = 0;
	uint16_t res;

	if (o->proto == IPPROTO_UDP && get16(l4 + 6) == 0) {
		if (o->family == 4)
			return true;
		return why_set(why, whylen, "UDP checksum 0 over IPv6");
	}
	if (o->proto != IPPROTO_ICMP)
		sum = pseudo_sum(o->family, o->src, o->dst, o->proto, l4_len);
	/* Summing over the stored checksum too gives 0 once folded and
	 * complemented, without recomputing and comparing. */
	res = csum_fold(csum_add(sum, l4, l4_len));
	if (res)
		return why_set(why, whylen,
			       "bad L4 (proto %u) checksum 0x%04x: off by 0x%04x",
			       o->proto, get16(l4 + (o->proto == IPPROTO_TCP ? 16 :
						      o->proto == IPPROTO_UDP ? 6 : 2)),
			       res);
	return true;
}

bool pkt_csum_ok(const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	struct pkt_info o;
	int err;

	if (why && whylen)
		why[0] = '\0';
	err = pkt_parse(buf, len, &o);
	if (err)
		return why_set(why, whylen, "cannot parse: %s", strerror(-err));
	if (!o.family)
		return true;
	if (o.family == 4 && pkt_inet_csum(buf + o.l3_off, o.ip_hdr_len))
		return why_set(why, whylen, "bad IPv4 header checksum 0x%04x",
			       get16(buf + o.l3_off + 10));
	if (o.frag)
		return true;
	switch (o.proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		break;
	default:
		return true;
	}
	if (o.l3_off + o.l3_len > len)
		return why_set(why, whylen,
			       "truncated: IP length %zu, frame has %zu",
			       o.l3_len, len - o.l3_off);
	return l4_csum_ok(buf, &o, why, whylen);
}
