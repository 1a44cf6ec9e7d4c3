// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Tests of the packet builder itself: every packet test trusts its output,
 * so it is checked against bytes computed independently of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <stdint.h>

#include "pktbuild.h"
#include "test_progs.h"

static const struct pkt_spec v4_syn = {
	.src = "10.0.0.1",
	.dst = "10.0.0.2",
	.ip_id = 0x1234,
	.df = true,
	.proto = IPPROTO_TCP,
	.sport = 40000,
	.dport = 80,
	.seq = 0x01020304,
	.tcp_flags = PKT_TCP_SYN,
	.tcp_opts = { 2, 4, 0x05, 0xb4 }, /* MSS 1460 */
	.tcp_opts_len = 4,
};

/* v4_syn, laid out and summed by hand in python3 (plain integer
 * arithmetic, no pktbuild code): IPv4 checksum 0x1496, TCP 0xe89c. */
static const uint8_t v4_syn_bytes[] = {
	0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00,
	0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00,
	0x00, 0x2c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06,
	0x14, 0x96, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00,
	0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02,
	0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02,
	0xfa, 0xf0, 0xe8, 0x9c, 0x00, 0x00, 0x02, 0x04,
	0x05, 0xb4,
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void subtest_v4_syn_known(void)
{
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	char why[128];
	size_t len;

	len = pkt_build(&v4_syn, buf, sizeof(buf));
	ASSERT_MEMEQ(buf, len, v4_syn_bytes, sizeof(v4_syn_bytes), "frame");
	ASSERT_EQ(rd16(buf + 24), 0x1496, "ip csum");
	ASSERT_EQ(rd16(buf + 50), 0xe89c, "tcp csum");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);

	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse"))
		return;
	ASSERT_EQ(info.family, 4, "family");
	ASSERT_EQ(info.proto, IPPROTO_TCP, "proto");
	ASSERT_EQ(info.sport, 40000, "sport");
	ASSERT_EQ(info.dport, 80, "dport");
	ASSERT_EQ(info.tcp_flags, PKT_TCP_SYN, "flags");
	ASSERT_EQ(info.seq, 0x01020304, "seq");
	ASSERT_EQ(info.l4_off, 34, "l4_off");
	ASSERT_EQ(info.payload_off, 58, "payload_off");
	ASSERT_EQ(info.payload_len, 0, "payload_len");
}

static void subtest_v6_udp_ext(void)
{
	static const uint8_t fd00_1[16] = { 0xfd, [15] = 1 };
	const struct pkt_spec s = {
		.src = "fd00::1",
		.dst = "fd00::2",
		.ext = {
			{ .type = PKT_EXT_HOP },
			{ .type = PKT_EXT_ROUTING, .len = 24, .rt_type = 4 },
			{ .type = PKT_EXT_DEST, .len = 16 },
		},
		.proto = IPPROTO_UDP,
		.sport = 5353,
		.dport = 53,
		.payload = "hello",
		.payload_len = 5,
	};
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	char why[128];
	size_t len;

	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 14 + 40 + 8 + 24 + 16 + 8 + 5, "len");
	ASSERT_EQ(rd16(buf + 12), ETH_P_IPV6, "ethertype");
	ASSERT_EQ(rd16(buf + 14 + 4), 8 + 24 + 16 + 8 + 5, "payload length");
	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse"))
		return;
	ASSERT_EQ(info.family, 6, "family");
	ASSERT_MEMEQ(info.src, 16, fd00_1, 16, "src");
	ASSERT_EQ(info.nr_ext, 3, "nr_ext");
	ASSERT_EQ(info.ext_proto[0], IPPROTO_HOPOPTS, "ext0");
	ASSERT_EQ(info.ext_proto[1], IPPROTO_ROUTING, "ext1");
	ASSERT_EQ(info.ext_proto[2], IPPROTO_DSTOPTS, "ext2");
	ASSERT_EQ(info.ip_hdr_len, 40 + 8 + 24 + 16, "ip_hdr_len");
	ASSERT_EQ(info.proto, IPPROTO_UDP, "proto");
	ASSERT_EQ(info.sport, 5353, "sport");
	ASSERT_EQ(info.dport, 53, "dport");
	ASSERT_FALSE(info.frag, "frag");
	ASSERT_EQ(info.payload_len, 5, "payload_len");
	ASSERT_MEMEQ(buf + info.payload_off, info.payload_len, "hello", 5,
		     "payload");
	/* Computed by hand over the pseudo-header with the UDP length (13),
	 * not the IPv6 payload length: the extension headers are excluded. */
	ASSERT_EQ(rd16(buf + info.l4_off + 6), 0xacdf, "udp csum");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);
}

static void subtest_v6_fragments(void)
{
	struct pkt_spec s = {
		.src = "fd00::1",
		.dst = "fd00::2",
		.ext = { { .type = PKT_EXT_FRAG, .more = true,
			   .frag_id = 0xabcd } },
		.proto = IPPROTO_TCP,
		.sport = 1,
		.dport = 2,
		.payload = "0123456789abcdef",
		.payload_len = 16,
	};
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	size_t len;

	len = pkt_build(&s, buf, sizeof(buf));
	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse first"))
		return;
	ASSERT_TRUE(info.frag && info.more_frags, "first is fragment");
	ASSERT_EQ(info.frag_off, 0, "first offset");
	ASSERT_EQ(info.l4_off, 14 + 48, "first l4_off");
	ASSERT_EQ(info.dport, 2, "first dport");

	/* A later fragment has no TCP header: the payload follows at once. */
	s.ext[0].frag_off = 3;
	s.ext[0].more = false;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 14 + 48 + 16, "later len");
	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse later"))
		return;
	ASSERT_TRUE(info.frag && !info.more_frags, "later is last fragment");
	ASSERT_EQ(info.frag_off, 3, "later offset");
	ASSERT_EQ(info.l4_off, 0, "later l4_off");
	ASSERT_EQ(info.payload_off, 14 + 48, "later payload_off");
	ASSERT_EQ(info.payload_len, 16, "later payload_len");
}

static void subtest_v4_options_fragment(void)
{
	const struct pkt_spec s = {
		.src = "192.0.2.1",
		.dst = "198.51.100.7",
		.ip_opts = { 0x94, 0x04, 0x00 }, /* router alert, padded */
		.ip_opts_len = 3,
		.mf = true,
		.frag_off = 185,
		.ttl = 1,
		.proto = IPPROTO_UDP,
		.payload = "xy",
		.payload_len = 2,
	};
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	char why[128];
	size_t len;

	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 14 + 24 + 2, "len");
	ASSERT_EQ(buf[14], 0x46, "version/ihl");
	ASSERT_EQ(rd16(buf + 14 + 6), 0x2000 | 185, "frag field");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);
	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse"))
		return;
	ASSERT_EQ(info.ip_hdr_len, 24, "ip_hdr_len");
	ASSERT_EQ(info.ttl, 1, "ttl");
	ASSERT_TRUE(info.frag && info.more_frags, "frag");
	ASSERT_EQ(info.l4_off, 0, "no l4");
	ASSERT_EQ(info.payload_len, 2, "payload_len");
}

static void subtest_truncate(void)
{
	uint8_t full[PKT_MAX_LEN], buf[PKT_MAX_LEN];
	struct pkt_spec s = v4_syn;
	struct pkt_info info;
	char why[128];
	size_t flen, len;

	s.payload = "payload!";
	s.payload_len = 8;
	flen = pkt_build(&s, full, sizeof(full));

	/* Inside the TCP header: headers incomplete. */
	s.truncate_to = 40;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 40, "len");
	ASSERT_MEMEQ(buf, len, full, 40, "prefix");
	ASSERT_EQ(pkt_parse(buf, len, &info), -EMSGSIZE, "parse short");
	ASSERT_FALSE(pkt_csum_ok(buf, len, NULL, 0), "csum short");

	/* Inside the payload: headers parse, lengths still say 8 bytes. */
	s.truncate_to = flen - 3;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, flen - 3, "len 2");
	ASSERT_MEMEQ(buf, len, full, flen - 3, "prefix 2");
	if (ASSERT_OK(pkt_parse(buf, len, &info), "parse 2")) {
		ASSERT_EQ(info.l3_len, 20 + 24 + 8, "l3_len");
		ASSERT_EQ(info.payload_len, 5, "clipped payload_len");
	}
	ASSERT_FALSE(pkt_csum_ok(buf, len, why, sizeof(why)), "csum 2");
	if (test__verbose())
		printf("why: %s\n", why);

	/* Past the end: no effect. */
	s.truncate_to = flen + 100;
	ASSERT_EQ(pkt_build(&s, buf, sizeof(buf)), flen, "len 3");
}

static void subtest_vlan(void)
{
	static const uint8_t tags[] = { 0x88, 0xa8, 0x00, 0x64,
					0x81, 0x00, 0x60, 0xc8,
					0x08, 0x00 };
	struct pkt_spec s = v4_syn;
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	char why[128];
	size_t len;

	s.vlan[0] = (struct pkt_vlan){ .tpid = PKT_TPID_8021AD, .vid = 100 };
	s.vlan[1] = (struct pkt_vlan){ .tpid = PKT_TPID_8021Q, .vid = 200,
				       .pcp = 3 };
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, sizeof(v4_syn_bytes) + 8, "len");
	ASSERT_MEMEQ(buf + 12, sizeof(tags), tags, sizeof(tags), "tags");
	ASSERT_MEMEQ(buf + 22, len - 22, v4_syn_bytes + 14,
		     sizeof(v4_syn_bytes) - 14, "rest unchanged");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);
	if (!ASSERT_OK(pkt_parse(buf, len, &info), "parse"))
		return;
	ASSERT_EQ(info.nr_vlans, 2, "nr_vlans");
	ASSERT_EQ(info.vlan[0].tpid, PKT_TPID_8021AD, "outer tpid");
	ASSERT_EQ(info.vlan[0].vid, 100, "outer vid");
	ASSERT_EQ(info.vlan[1].vid, 200, "inner vid");
	ASSERT_EQ(info.vlan[1].pcp, 3, "inner pcp");
	ASSERT_EQ(info.eth_proto, ETH_P_IP, "eth_proto");
	ASSERT_EQ(info.l3_off, 22, "l3_off");
	ASSERT_EQ(info.dport, 80, "dport");
}

static void subtest_csum_catches_flip(void)
{
	struct pkt_spec s = v4_syn;
	uint8_t buf[PKT_MAX_LEN];
	char why[128];
	size_t len, i;
	int missed = 0;

	s.payload = "some payload";
	s.payload_len = 12;
	len = pkt_build(&s, buf, sizeof(buf));
	/* Every IP/TCP byte is covered by one of the two checksums. */
	for (i = ETH_HLEN; i < len; i++) {
		buf[i] ^= 0xff;
		if (pkt_csum_ok(buf, len, why, sizeof(why))) {
			printf("flip at %zu not caught\n", i);
			missed++;
		}
		buf[i] ^= 0xff;
	}
	ASSERT_EQ(missed, 0, "missed flips");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);

	s.bad_ip_csum = true;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_FALSE(pkt_csum_ok(buf, len, why, sizeof(why)), "bad_ip_csum");
	ASSERT_TRUE(strstr(why, "IPv4") != NULL, why);

	s.bad_ip_csum = false;
	s.bad_l4_csum = true;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_FALSE(pkt_csum_ok(buf, len, why, sizeof(why)), "bad_l4_csum");
	ASSERT_TRUE(strstr(why, "L4") != NULL, why);
}

static void subtest_icmp(void)
{
	const struct pkt_spec inner = {
		.l3_only = true,
		.src = "10.0.0.2",
		.dst = "10.0.0.1",
		.proto = IPPROTO_UDP,
		.sport = 53,
		.dport = 5353,
	};
	uint8_t in[64], buf[PKT_MAX_LEN];
	struct pkt_spec s = {
		.src = "10.0.0.9",
		.dst = "10.0.0.2",
		.proto = IPPROTO_ICMP,
		.icmp_type = 3, /* dest unreachable */
		.icmp_code = 4, /* frag needed */
	};
	struct pkt_info info;
	char why[128];
	size_t len, ilen;

	ilen = pkt_build(&inner, in, sizeof(in));
	ASSERT_EQ(ilen, 28, "inner len");
	if (!ASSERT_OK(pkt_parse_l3(in, ilen, &info), "parse inner"))
		return;
	ASSERT_EQ(info.dport, 5353, "inner dport");

	s.payload = in;
	s.payload_len = ilen;
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);
	if (ASSERT_OK(pkt_parse(buf, len, &info), "parse")) {
		ASSERT_EQ(info.icmp_type, 3, "type");
		ASSERT_EQ(info.icmp_code, 4, "code");
		ASSERT_EQ(info.payload_len, 28, "payload_len");
	}

	s = (struct pkt_spec){
		.src = "fd00::1",
		.dst = "fd00::2",
		.proto = IPPROTO_ICMPV6,
		.icmp_type = 128, /* echo request */
		.icmp_id = 7,
		.icmp_seq = 1,
	};
	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 14 + 40 + 8, "icmpv6 len");
	ASSERT_TRUE(pkt_csum_ok(buf, len, why, sizeof(why)), why);
}

static void subtest_addr_parse(void)
{
	static const uint8_t v4[16] = { 10, 0, 0, 1 };
	static const uint8_t v6[16] = { 0xfd, [15] = 1 };
	uint8_t addr[16];
	uint8_t af = 0;

	ASSERT_OK(pkt_addr_parse("10.0.0.1", addr, &af), "v4");
	ASSERT_EQ(af, AF_INET, "v4 af");
	ASSERT_MEMEQ(addr, 16, v4, 16, "v4 bytes");
	ASSERT_OK(pkt_addr_parse("fd00::1", addr, &af), "v6");
	ASSERT_EQ(af, AF_INET6, "v6 af");
	ASSERT_MEMEQ(addr, 16, v6, 16, "v6 bytes");
	ASSERT_EQ(pkt_addr_parse("10.0.0.256", addr, &af), -EINVAL, "bad");
	ASSERT_EQ(pkt_addr_parse(NULL, addr, &af), -EINVAL, "null");
}

static void subtest_bad_spec(void)
{
	struct pkt_spec s = v4_syn;
	uint8_t buf[PKT_MAX_LEN];

	/* The reasons go to the log, where a failing table test shows them. */
	ASSERT_EQ(pkt_build(&s, buf, 40), 0, "cap too small");
	s.dst = "fd00::2";
	ASSERT_EQ(pkt_build(&s, buf, sizeof(buf)), 0, "mixed families");
	s = v4_syn;
	s.family = 6;
	ASSERT_EQ(pkt_build(&s, buf, sizeof(buf)), 0, "family mismatch");
	s = v4_syn;
	s.ext[0].type = PKT_EXT_HOP;
	ASSERT_EQ(pkt_build(&s, buf, sizeof(buf)), 0, "ext on v4");
}

static void subtest_non_ip(void)
{
	static const uint8_t arp[28] = { 0x00, 0x01, 0x08, 0x00, 6, 4 };
	const struct pkt_spec s = {
		.eth_proto = ETH_P_ARP,
		.payload = arp,
		.payload_len = sizeof(arp),
	};
	uint8_t buf[PKT_MAX_LEN];
	struct pkt_info info;
	size_t len;

	len = pkt_build(&s, buf, sizeof(buf));
	ASSERT_EQ(len, 14 + 28, "len");
	ASSERT_OK(pkt_parse(buf, len, &info), "parse");
	ASSERT_EQ(info.family, 0, "family");
	ASSERT_EQ(info.eth_proto, ETH_P_ARP, "eth_proto");
	ASSERT_TRUE(pkt_csum_ok(buf, len, NULL, 0), "csum ok");
}

static void subtest_memeq_equal(void)
{
	static const uint8_t a[] = { 1, 2, 3, 4, 5 };
	uint8_t b[sizeof(a)];

	memcpy(b, a, sizeof(a));
	ASSERT_TRUE(ASSERT_MEMEQ(b, sizeof(b), a, sizeof(a), "equal"),
		    "memeq returns true");
	ASSERT_TRUE(ASSERT_MEMEQ(b, 0, a, 0, "empty"), "empty is equal");
}

FG_TEST(pktbuild)
{
	if (test__start_subtest("v4_syn_known_csum"))
		subtest_v4_syn_known();
	if (test__start_subtest("v6_udp_ext_hdrs"))
		subtest_v6_udp_ext();
	if (test__start_subtest("v6_fragments"))
		subtest_v6_fragments();
	if (test__start_subtest("v4_options_fragment"))
		subtest_v4_options_fragment();
	if (test__start_subtest("truncate"))
		subtest_truncate();
	if (test__start_subtest("vlan_qinq"))
		subtest_vlan();
	if (test__start_subtest("csum_catches_flip"))
		subtest_csum_catches_flip();
	if (test__start_subtest("icmp"))
		subtest_icmp();
	if (test__start_subtest("addr_parse"))
		subtest_addr_parse();
	if (test__start_subtest("bad_spec"))
		subtest_bad_spec();
	if (test__start_subtest("non_ip"))
		subtest_non_ip();
	if (test__start_subtest("memeq_equal"))
		subtest_memeq_equal();
}
