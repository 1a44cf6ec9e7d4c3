/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A declarative packet builder for BPF_PROG_TEST_RUN tests, and the checks
 * used on what the program sends back.
 *
 *   static const struct pkt_spec syn = {
 *           .src = "10.0.0.1", .dst = "10.0.0.2",
 *           .proto = IPPROTO_TCP, .sport = 40000, .dport = 80,
 *           .tcp_flags = PKT_TCP_SYN, .seq = 1,
 *   };
 *   uint8_t buf[PKT_MAX_LEN];
 *   size_t len = pkt_build(&syn, buf, sizeof(buf));
 *
 * Every field left zero has a sane default (see struct pkt_spec), so a
 * table of cases only spells out what matters to each case. Checksums are
 * always computed correctly unless a case asks for a bad one.
 */
#ifndef FG_PKTBUILD_H
#define FG_PKTBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#define PKT_MAX_LEN     9216 /* jumbo frame; enough for any test */
#define PKT_MAX_VLANS   2
#define PKT_MAX_EXTS    4
#define PKT_MAX_IP_OPTS 40
#define PKT_MAX_TCP_OPTS 40

#define PKT_TPID_8021Q  0x8100
#define PKT_TPID_8021AD 0x88a8

/* TCP flags as in the header's flag byte. */
#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10
#define PKT_TCP_URG 0x20

/* One VLAN tag, outermost first in pkt_spec.vlan[]. An entry is present
 * when its tpid is non-zero. */
struct pkt_vlan {
	uint16_t tpid; /* PKT_TPID_8021Q or PKT_TPID_8021AD */
	uint16_t vid;  /* 12 bits */
	uint8_t pcp;   /* 3 bits */
};

/* Non-zero, unlike IPPROTO_HOPOPTS, so an unused entry is all zero. */
enum pkt_ext_type {
	PKT_EXT_NONE = 0,
	PKT_EXT_HOP,     /* hop-by-hop options (IPPROTO_HOPOPTS) */
	PKT_EXT_ROUTING, /* routing header (IPPROTO_ROUTING) */
	PKT_EXT_DEST,    /* destination options (IPPROTO_DSTOPTS) */
	PKT_EXT_FRAG,    /* fragment header (IPPROTO_FRAGMENT) */
};

/* One IPv6 extension header, in wire order in pkt_spec.ext[]. */
struct pkt_ext {
	enum pkt_ext_type type;
	/* HOP/ROUTING/DEST: total length in bytes, a multiple of 8 (0: 8).
	 * Option space is Pad1 (zero) filled, which parsers must accept. */
	uint16_t len;
	uint8_t rt_type;   /* ROUTING: routing type */
	/* ROUTING: segments left. The L4 checksum always uses dst, which
	 * is only right for segs_left == 0 (dst is the final hop). */
	uint8_t segs_left;
	uint16_t frag_off; /* FRAG: offset in 8-byte units */
	bool more;         /* FRAG: M flag */
	uint32_t frag_id;  /* FRAG: identification */
};

struct pkt_spec {
	/* L2. All-zero MACs mean 02:00:00:00:00:01 (src), :02 (dst). */
	uint8_t eth_src[6];
	uint8_t eth_dst[6];
	struct pkt_vlan vlan[PKT_MAX_VLANS];
	/* EtherType of a non-IP frame (src == NULL); the payload follows the
	 * L2 header directly. */
	uint16_t eth_proto;
	/* Start the frame at the IP header (no Ethernet, no VLANs): for the
	 * inner packet of an ICMP error or of an encapsulation. */
	bool l3_only;

	/* L3. family: 4 or 6 (AF_INET/AF_INET6 also accepted), or 0 to take
	 * it from src. src/dst are textual addresses ("10.0.0.1",
	 * "fd00::1"); src == NULL builds a non-IP frame. */
	int family;
	const char *src;
	const char *dst;
	uint8_t ttl;        /* TTL / hop limit; 0 means 64 */
	uint8_t tos;        /* IPv4 TOS / IPv6 traffic class */
	uint32_t flow_label; /* IPv6 */
	uint16_t ip_id;     /* IPv4 identification */
	bool df, mf;        /* IPv4 flags */
	uint16_t frag_off;  /* IPv4 fragment offset in 8-byte units */
	/* IPv4 options, zero-padded (EOL) to a multiple of 4 bytes. */
	uint8_t ip_opts[PKT_MAX_IP_OPTS];
	uint8_t ip_opts_len;
	struct pkt_ext ext[PKT_MAX_EXTS]; /* IPv6 extension headers */

	/* L4. proto: IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 get their header
	 * built; any other protocol number carries the payload directly.
	 * A non-first fragment (frag_off != 0) carries no L4 header. */
	uint8_t proto;
	uint16_t sport, dport; /* host order */
	uint8_t tcp_flags;     /* PKT_TCP_* */
	uint32_t seq, ack;
	uint16_t window;       /* 0 means 64240 */
	uint8_t tcp_opts[PKT_MAX_TCP_OPTS]; /* NOP (1) padded to 4 bytes */
	uint8_t tcp_opts_len;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq; /* echo request/reply */

	const void *payload;
	size_t payload_len;

	/* Negative cases: store a checksum off by one. */
	bool bad_ip_csum;
	bool bad_l4_csum;
	/* Cut the finished frame to this many bytes (0: don't); lengths and
	 * checksums still describe the whole packet. */
	size_t truncate_to;
};

/* Writes the frame described by s into buf. Returns its length, or 0 when
 * the spec is invalid or cap too small (the reason goes to stderr, i.e. the
 * test's log). */
size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap);

struct pkt_info {
	uint8_t eth_dst[6];
	uint8_t eth_src[6];
	int nr_vlans;
	struct pkt_vlan vlan[PKT_MAX_VLANS];
	uint16_t eth_proto; /* innermost EtherType, host order */

	int family;         /* 4, 6, or 0 for a non-IP frame */
	uint8_t src[16];    /* IPv4 in the first 4 bytes, as struct fg_addr */
	uint8_t dst[16];
	uint8_t ttl;
	uint8_t tos;
	size_t l3_off;
	size_t l3_len;      /* per the header: IPv4 tot_len, IPv6 40+plen */
	size_t ip_hdr_len;  /* IPv4 IHL*4; IPv6 40 plus extension headers */
	int nr_ext;
	uint8_t ext_proto[8]; /* IPPROTO_* of each IPv6 extension header */
	bool frag;          /* any fragment (IPv4 MF/offset, IPv6 frag hdr) */
	bool more_frags;
	uint16_t frag_off;  /* in 8-byte units */

	uint8_t proto;      /* upper-layer protocol */
	size_t l4_off;      /* 0 when there is no L4 header (later fragment) */
	uint16_t sport, dport; /* host order; ICMP: 0 */
	uint8_t tcp_flags;
	uint32_t seq, ack;
	uint8_t icmp_type, icmp_code;
	size_t payload_off; /* first byte after the L4 header */
	size_t payload_len; /* per the IP length, clipped to the frame */
};

/* Parses a frame as pkt_build lays them out. Returns 0 when every header
 * through L4 is present, -EMSGSIZE when the frame ends early, -EBADMSG
 * when a header is malformed; out is filled as far as parsing got. */
int pkt_parse(const uint8_t *buf, size_t len, struct pkt_info *out);
/* The same for a packet starting at its IP header (spec.l3_only). */
int pkt_parse_l3(const uint8_t *buf, size_t len, struct pkt_info *out);

/* Verifies, from scratch, the IPv4 header checksum and the TCP, UDP,
 * ICMP or ICMPv6 checksum (not for fragments: they cover the whole
 * datagram). On failure says why in why (may be NULL). */
bool pkt_csum_ok(const uint8_t *buf, size_t len, char *why, size_t whylen);

/* Parses "10.0.0.1" or "fd00::1" into a 16-byte address laid out like
 * struct fg_addr (IPv4 in the first 4 bytes, the rest zero). *af gets
 * AF_INET or AF_INET6, i.e. FG_AF_INET / FG_AF_INET6. Returns 0 or
 * -EINVAL. */
int pkt_addr_parse(const char *str, uint8_t addr[16], uint8_t *af);

/* The Internet checksum (RFC 1071) of buf, folded and complemented. */
uint16_t pkt_inet_csum(const void *buf, size_t len);

#endif
