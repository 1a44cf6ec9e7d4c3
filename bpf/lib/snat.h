/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The SNAT allocator: which (gateway address, port) a new flow uses toward
 * its backend.
 *
 * A backend-side tuple (backend address:port, SNAT address:port) belongs to
 * the flow whose reverse_nat entry holds it; inserting that entry with
 * BPF_NOEXIST is what makes it ours, atomically. Which tuple to try is the
 * allocator's business, and its constraint is the backend's TIME_WAIT: a
 * backend that closed first keeps the tuple for 60 s, and a SYN from an
 * unrelated client tuple on it is refused (PAWS: Linux randomises
 * timestamps and sequence numbers per connection), costing the client a
 * 1 s retransmission. So a closed flow's port must rest snat_time_wait_ns
 * before another client tuple gets it, unless nothing else is free.
 *
 * Per backend (snat_cursor[backend_id]) an index walks the candidates in a
 * fixed order, address first then port: index k is address k % n_addrs of
 * the egress interface (ifaces map) and port k / n_addrs of the SNAT
 * ranges. Every new flow takes the next index (one atomic add), so a
 * tuple comes round again only after every other tuple of that backend
 * has been handed out once: with P ports and A addresses, after P * A new
 * flows. That is the resting time, whatever the reverse_nat table held or
 * evicted meanwhile: at R new flows/s per backend, P * A / R seconds (with
 * 27304 ports, 1 address: 455 flows/s per backend before a port comes back
 * inside 60 s; each --snat-addr adds as many).
 *
 * Where a backend's walk starts (its cursor is 0 until its first new
 * flow): where a walk at exactly that highest rate (P * A tuples per
 * snat_time_wait_ns) would be now, by the TAI clock. Whatever used the
 * backend's tuples before (a previous run of the gateway whose maps were
 * not kept, or the same endpoint under a backend id it had before it left
 * and came back) was behind that walk, unless it was already reusing
 * tuples inside TIME_WAIT; so a new walk does not meet its tuples while
 * they may still be in TIME_WAIT. With kept maps the walk simply goes on.
 *
 * A candidate's reverse_nat entry decides: none, take it (FRESH); a live
 * flow's, skip it; a flow that closed (both FINs) longer than
 * snat_time_wait_ns ago, or that idled out, take it over (RECLAIMED); one
 * that closed more recently rests. After FG_SNAT_TRIES candidates without
 * a free one, the resting candidate that closed longest ago is taken
 * (REUSED_TW: the client may see one retransmission) rather than dropping
 * the SYN; only when every candidate is a live flow is the SYN dropped
 * (no_snat_port). Taking over an entry is claimed with a compare-and-swap
 * of its last_seen_ns, so two CPUs cannot both take the same tuple.
 */
#ifndef FG_BPF_SNAT_H
#define FG_BPF_SNAT_H

#include "common.h"
#include "conntrack.h"
#include "maps.bpf.h"

/* SNAT source port ranges; the agent keeps them outside the local stack's
 * ip_local_port_range (and reserves them), so the gateway's own sockets
 * never take one. The second range is optional (min 0). */
const volatile __u16 snat_port_min = 40000;
const volatile __u16 snat_port_max = 59999;
const volatile __u16 snat_port2_min = 0;
const volatile __u16 snat_port2_max = 0;
/* How long a closed flow's tuple rests: Linux's TIME_WAIT (TCP_TIMEWAIT_LEN). */
const volatile __u64 snat_time_wait_ns = 60 * NSEC_PER_SEC;

static __always_inline __u32 snat_nports(void)
{
	__u32 n = (__u32)snat_port_max - snat_port_min + 1;

	if (snat_port2_min)
		n += (__u32)snat_port2_max - snat_port2_min + 1;
	return n;
}

/* The i-th port of the ranges (i < snat_nports()). */
static __always_inline __u16 snat_port_at(__u32 i)
{
	__u32 n1 = (__u32)snat_port_max - snat_port_min + 1;

	return i < n1 ? snat_port_min + i : snat_port2_min + (i - n1);
}

static __always_inline void snat_count(__u32 stat, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&snat_stats, &stat);

	if (c)
		*c += n;
}

enum snat_verdict {
	SNAT_TAKE,  /* free: nobody can still be using it */
	SNAT_REST,  /* closed, but the backend may hold it in TIME_WAIT */
	SNAT_BUSY,  /* a live flow's */
};

static __always_inline int snat_classify(const struct fg_rnat *rn, __u64 seen, __u8 proto,
					 __u64 now)
{
	bool closed = proto == FG_PROTO_TCP && rn->state == FG_CT_CLOSED;

	if (!closed && !ct_expired(seen, proto, rn->state, now))
		return SNAT_BUSY;
	if (proto != FG_PROTO_TCP || (now > seen && now - seen >= snat_time_wait_ns))
		return SNAT_TAKE;
	return SNAT_REST;
}

static __always_inline bool fg_addr_eq(const struct fg_addr *a, const struct fg_addr *b)
{
	return a->v6[0] == b->v6[0] && a->v6[1] == b->v6[1] && a->v6[2] == b->v6[2] &&
	       a->v6[3] == b->v6[3];
}

/* Takes over the tuple of an entry last seen at `seen`: only one CPU can
 * move last_seen_ns from that value. The stale flow's conntrack entry goes
 * too, when it still owns this tuple (the client may have opened a new
 * flow on the same client tuple since). */
static __always_inline bool snat_claim(const struct fg_flow *rkey, struct fg_rnat *old,
				       __u64 seen, const struct fg_rnat *fresh)
{
	struct fg_ct *ct;

	if (__sync_val_compare_and_swap(&old->last_seen_ns, seen, fresh->last_seen_ns) != seen)
		return false;
	/* The entry is ours until the update below: its client is stable. */
	ct = bpf_map_lookup_elem(&conntrack, &old->client);
	if (ct && ct->snat_port == rkey->dport && fg_addr_eq(&ct->snat_addr, &rkey->dst))
		bpf_map_delete_elem(&conntrack, &old->client);
	return !bpf_map_update_elem(&reverse_nat, rkey, fresh, BPF_EXIST);
}

/* The candidate of index k: its SNAT address (in *addr) and port. */
static __always_inline __be16 snat_candidate(const struct fg_iface *ifc, __u8 family, __u32 k,
					     __u32 n_addrs, struct fg_addr *addr)
{
	__u32 a = k % n_addrs;

	/* Bounded where the verifier sees it: clang knows a < n_addrs <= 16
	 * and would drop a plain mask. */
	asm volatile("%[a] &= %[m]" : [a] "+r"(a) : [m] "i"(FG_SNAT_ADDRS - 1));
	*addr = family == FG_AF_INET ? ifc->v4[a] : ifc->v6[a];
	return bpf_htons(snat_port_at(k / n_addrs));
}

/* Finds the new flow's SNAT address and port toward backend be (id
 * backend_id) behind the interface ifc, and makes them its own by
 * inserting fresh (the flow's reverse_nat entry) under the backend-side
 * tuple. Fills *addr, *port and the tuple *rkey; returns 0, or -1 when
 * there is no address of the family (no_snat_addr), -2 when every
 * candidate is a live flow's (no_snat_port). */
static __always_inline int snat_alloc(const struct fg_iface *ifc, const struct fg_backend *be,
				      __u32 backend_id, __u8 proto, __u8 family,
				      const struct fg_rnat *fresh, __u64 now,
				      struct fg_addr *addr, __be16 *port, struct fg_flow *rkey)
{
	__u32 n_addrs = family == FG_AF_INET ? ifc->n_v4 : ifc->n_v6;
	__u32 nports = snat_nports(), total, k = 0, best_k = 0, i, skipped = 0;
	__u64 best_seen = ~0ULL, seen;
	bool have_best = false;
	struct fg_rnat *old;
	__u32 *cursor;
	int v;

	if (!n_addrs)
		return -1;
	if (n_addrs > FG_SNAT_ADDRS)
		n_addrs = FG_SNAT_ADDRS;
	total = nports * n_addrs;
	cursor = bpf_map_lookup_elem(&snat_cursor, &backend_id);
	if (!cursor || !total || nports > 65536)
		goto exhausted;
	if (!*cursor) {
		__u64 tw_s = snat_time_wait_ns / NSEC_PER_SEC;
		__u32 start = 0;

		if (tw_s)
			start = (bpf_ktime_get_tai_ns() / NSEC_PER_SEC) * total / tw_s % total;
		/* + total: not 0 (taken), the same index modulo total. */
		__sync_val_compare_and_swap(cursor, 0, start + total);
	}

	/* Unrolled: older verifiers (6.1) refuse the back-edge clang lays out
	 * for this loop. */
#pragma unroll
	for (i = 0; i < FG_SNAT_TRIES; i++) {
		k = __sync_fetch_and_add(cursor, 1) % total;
		*port = snat_candidate(ifc, family, k, n_addrs, addr);
		ct_reverse_key(rkey, be, addr, *port, proto, family);
		if (!bpf_map_update_elem(&reverse_nat, rkey, fresh, BPF_NOEXIST)) {
			snat_count(FG_SNAT_FRESH, 1);
			goto done;
		}
		old = bpf_map_lookup_elem(&reverse_nat, rkey);
		if (!old) {
			skipped++;
			continue;
		}
		seen = old->last_seen_ns;
		v = snat_classify(old, seen, proto, now);
		if (v == SNAT_TAKE && snat_claim(rkey, old, seen, fresh)) {
			snat_count(FG_SNAT_RECLAIMED, 1);
			goto done;
		}
		if (v == SNAT_REST && seen < best_seen) {
			best_seen = seen;
			best_k = k;
			have_best = true;
		}
		skipped++;
	}
	/* Nothing free among the candidates: the one resting longest (closed
	 * first), rather than a dropped SYN. */
	if (have_best) {
		*port = snat_candidate(ifc, family, best_k, n_addrs, addr);
		ct_reverse_key(rkey, be, addr, *port, proto, family);
		old = bpf_map_lookup_elem(&reverse_nat, rkey);
		if (old && old->last_seen_ns == best_seen &&
		    snat_claim(rkey, old, best_seen, fresh)) {
			snat_count(FG_SNAT_REUSED_TW, 1);
			goto done;
		}
	}
exhausted:
	snat_count(FG_SNAT_SKIPPED, skipped);
	snat_count(FG_SNAT_EXHAUSTED, 1);
	return -2;
done:
	if (skipped)
		snat_count(FG_SNAT_SKIPPED, skipped);
	return 0;
}

#endif
