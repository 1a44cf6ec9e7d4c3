/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef FG_BPF_COMMON_H
#define FG_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fleetgate.h"

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_ALEN     6

#define IP_MF     0x2000
#define IP_OFFSET 0x1FFF

#define NEXTHDR_HOP      0
#define NEXTHDR_TCP      6
#define NEXTHDR_UDP     17
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH    51
#define NEXTHDR_ICMP    58
#define NEXTHDR_NONE    59
#define NEXTHDR_DEST    60

#define IPPROTO_ICMP_   1

#define AF_INET   2
#define AF_INET6 10

/* How many IPv6 extension headers we walk before giving up (passing). */
#define FG_IP6_MAX_EXT 6
/* Largest L4 offset we rewrite (mask for the verifier). */
#define FG_MAX_L4_OFF 1023
/* How many VLAN tags we strip while parsing. */
#define FG_MAX_VLAN 2
/* Selection attempts when the chosen backend is down. */
#define FG_SELECT_TRIES 4
/* SNAT (address, port) candidates a new flow looks at before it takes the
 * one that closed longest ago (or, when all are live, gives up). */
#define FG_SNAT_TRIES 8

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#endif
