// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The L7 proxy's in-kernel splice: an sk_skb verdict program (no stream
 * parser) on every proxied socket (include/fleetgate_sockmap.h).
 *
 * Each received skb is either passed to the agent (SK_PASS: it lands in
 * the socket's psock queue, recv() reads it) or, while the agent has a
 * window open on the socket, redirected to the peer socket's egress
 * (bpf_sk_redirect_hash, flags 0): the body bytes the agent's framer
 * calls opaque never reach user space.
 *
 * Positions count every byte received since the socket entered the map. A
 * window [start, end) is adopted only when the position is exactly start,
 * where the agent is: otherwise passed bytes it has not read yet would
 * precede the redirected ones, and it would write them to the peer after
 * the kernel did (reordering). A refused window is "stale"; the agent
 * reads what is queued and opens a new one. Being absolute, a window the
 * agent gave up on can never redirect bytes it does not account for.
 *
 * No stream parser: an skb is never split. One that goes past the end of
 * the window (the next chunk-size line, a pipelined request) is passed
 * whole and closes the window; the agent forwards the rest itself.
 *
 * The verdict path (tcp_read_skb) hands over whole skbs, and after a
 * retransmission one can start before what was already received (TCP's
 * own readers skip that prefix by sequence number). So the program tracks
 * the TCP sequence (the skb's tcp_skb_cb, through bpf_cast_to_kern_ctx:
 * kernel 6.3 or later, else the object does not load and the proxy falls
 * back to splice) and removes repeated bytes before counting anything;
 * when it cannot, it marks the socket broken and the agent ends the
 * exchange instead of forwarding bytes it cannot vouch for.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "fleetgate_sockmap.h"

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define WRITE_ONCE_U64(x, v) (*(volatile __u64 *)&(x) = (v))
#define WRITE_ONCE_U32(x, v) (*(volatile __u32 *)&(x) = (v))

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, FG_SK_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fg_sk_socks SEC(".maps");

/* Redirect targets (the proxy's client sockets): in a sockhash of their own
 * with no program attached, so they get a psock (needed to be redirected
 * to) but their own receive path stays plain TCP (recv, splice(2)). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, FG_SK_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fg_sk_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_SK_MAX_SOCKS);
	/* No prealloc: an update replaces the element and the old one is
	 * freed after RCU, so the program never reads a torn window. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct fg_sk_window);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fg_sk_win SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_SK_MAX_SOCKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct fg_sk_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fg_sk_state SEC(".maps");

/* "sk_skb" (not "sk_skb/verdict", unknown to libbpf 1.1); attached as
 * BPF_SK_SKB_VERDICT by agent/splice.c. */
SEC("sk_skb")
int fg_sk_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct fg_sk_window *w;
	struct fg_sk_state *s;
	__u64 len = skb->len, pos, peer;

	s = bpf_map_lookup_elem(&fg_sk_state, &cookie);
	if (!s)
		return SK_PASS;
	if (s->broken)
		return SK_PASS;
	{
		struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
		__u32 seq = 0, rep;
		int i;

		if (bpf_probe_read_kernel(&seq, sizeof(seq), &k->cb[0]))
			goto broken;
		if (s->seq_valid && seq != s->next_seq) {
			rep = s->next_seq - seq;
			if ((__s32)rep < 0)
				goto broken; /* a hole: cannot happen in order */
			if (rep >= len) {
				/* Nothing new in it. */
				s->overlap += len;
				return SK_DROP;
			}
			/* Cut the repeated prefix (at most 0xfff bytes per
			 * call); 64 calls cover 256 KiB. */
			for (i = 0; i < 64 && rep; i++) {
				__u32 cut = rep > 0xfff ? 0xfff : rep;

				if (bpf_skb_adjust_room(skb, -(__s32)cut, 0, 0))
					goto broken;
				rep -= cut;
				s->overlap += cut;
			}
			if (rep)
				goto broken;
			len = skb->len;
			seq = s->next_seq;
		}
		s->next_seq = seq + len;
		s->seq_valid = 1;
	}
	pos = s->passed + s->total_redirected;
	w = bpf_map_lookup_elem(&fg_sk_win, &cookie);
	if (w && s->gen != w->gen) {
		/* A window the program has not seen yet: it opens only where
		 * the agent is, else bytes it has not read yet would precede
		 * the redirected ones. */
		s->stale = pos != w->start;
		WRITE_ONCE_U64(s->redirected, 0);
		WRITE_ONCE_U32(s->closed, s->stale);
		WRITE_ONCE_U64(s->gen, w->gen);
	}
	if (w && !s->closed) {
		if (pos + len <= w->end) {
			peer = w->peer;
			if (bpf_sk_redirect_hash(skb, &fg_sk_peers, &peer, 0) != SK_PASS) {
				/* The peer left the map (closed). */
				s->dropped += len;
				WRITE_ONCE_U64(s->total_redirected, s->total_redirected + len);
				WRITE_ONCE_U32(s->closed, 1);
				return SK_DROP;
			}
			/* The agent reads the state without a lock: the counts
			 * are final before closed says so (volatile keeps the
			 * stores in this order, x86 keeps them ordered). */
			WRITE_ONCE_U64(s->redirected, s->redirected + len);
			WRITE_ONCE_U64(s->total_redirected, s->total_redirected + len);
			if (pos + len == w->end)
				WRITE_ONCE_U32(s->closed, 1);
			return SK_PASS;
		}
		/* Goes past the window: the agent takes it from here. */
		WRITE_ONCE_U32(s->closed, 1);
	}
	WRITE_ONCE_U64(s->passed, s->passed + len);
	return SK_PASS;
broken:
	/* The agent stops trusting this socket's positions (it closes the
	 * exchange) before it reads past what was counted. */
	WRITE_ONCE_U32(s->closed, 1);
	WRITE_ONCE_U32(s->broken, 1);
	return SK_PASS;
}
