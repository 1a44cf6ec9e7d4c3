/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared between bpf/sockmap.bpf.c and agent/splice.c: the L7 proxy's
 * in-kernel splice (sockmap mode, docs/architecture.md "L7 data path").
 *
 * Every proxied socket (client and upstream) is in the sockhash
 * fg_sk_socks, keyed by its socket cookie, with an sk_skb verdict program
 * attached. The program passes every byte to the agent (recv() reads it)
 * unless the agent has opened a window on the socket: "bytes [START, END)
 * of your stream go to PEER", START being where the agent is (it has read
 * everything passed before). Those are redirected to the peer socket's
 * egress in the kernel.
 */
#ifndef FLEETGATE_SOCKMAP_H
#define FLEETGATE_SOCKMAP_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FG_SK_MAX_SOCKS 65536

/* Stream positions count every byte received on the socket since it
 * entered the map: passed to user space or redirected. */

/* fg_sk_win[cookie]: written by the agent only (whole value). */
struct fg_sk_window {
	__u64 gen;           /* new window: a new generation */
	__u64 start;         /* the window opens only at exactly this position:
			      * the agent has read every passed byte before it */
	__u64 end;           /* bytes [start, end) go to peer */
	__u64 peer;          /* cookie (fg_sk_socks key) of the destination */
};

/* fg_sk_state[cookie]: created by the agent (zeros), then written by the
 * verdict program only, in place: read it with fg_sockmap_state(). */
struct fg_sk_state {
	__u64 gen;           /* window generation adopted */
	__u64 redirected;    /* bytes of that window redirected */
	__u64 passed;        /* bytes passed to user space */
	__u64 total_redirected; /* position = passed + total_redirected */
	__u32 closed;        /* the window of generation gen is over */
	__u32 stale;         /* it was refused: start was not the position */
	__u64 dropped;       /* bytes dropped: the peer was gone */
	/* Repeated bytes: after a retransmission an skb in the receive queue
	 * can start before what was already received (TCP readers skip that
	 * prefix by sequence number; the verdict path hands over whole skbs),
	 * so the program tracks the TCP sequence and cuts the repeated prefix
	 * off (or drops an skb that is all repeat) before counting it. */
	__u32 next_seq;      /* TCP sequence after the last skb seen */
	__u32 seq_valid;
	__u64 overlap;       /* repeated bytes removed */
	__u32 broken;        /* a repeat that could not be removed, or a hole:
			      * positions cannot be trusted any more */
	__u32 pad;
};

#endif
