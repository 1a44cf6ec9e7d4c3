// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fleetgate's XDP program, attached to every gateway interface.
 *
 * Client side: a packet for a listener (VIP, port, protocol) is counted and
 * checked against the listener's source allowlist; L7 listeners pass to the
 * stack (the agent's HTTP proxy), L4 listeners are balanced here: conntrack
 * keeps established flows on their backend, new flows pick cluster then
 * backend (bpf/lib/lb.h), and the packet is full-NATed (DNAT to the backend,
 * SNAT to the gateway's address on the egress interface) and redirected to
 * the next hop found by bpf_fib_lookup.
 *
 * Cluster side: a packet that matches no listener but a reverse_nat entry is
 * a backend's reply; it is reverse-NATed back to the client the same way.
 *
 * Everything else passes to the stack untouched, counted by reason.
 */
#include "lib/common.h"
#include "maps.bpf.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/nat.h"
#include "lib/lb.h"
#include "lib/conntrack.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SNAT source port range; the agent reserves it from the local stack
 * (ip_local_reserved_ports) so the gateway's own sockets never take one. */
const volatile __u16 snat_port_min = 40000;
const volatile __u16 snat_port_max = 59999;

static __always_inline void count(void *map, __u32 idx, __u32 bytes)
{
	struct fg_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline int verdict(const struct fg_pkt *pkt, int reason, int action)
{
	count(&verdicts, reason, pkt->len);
	return action;
}

/* The parser's stated rule: malformed headers are dropped, the rest of what
 * we do not handle passes. */
static __always_inline int parse_verdict(const struct fg_pkt *pkt, int reason)
{
	switch (reason) {
	case FG_R_TRUNC_ETH:
	case FG_R_TRUNC_IP:
	case FG_R_BAD_IP:
	case FG_R_TRUNC_L4:
		return verdict(pkt, reason, XDP_DROP);
	default:
		return verdict(pkt, reason, XDP_PASS);
	}
}

static __always_inline __u32 fib_gen_now(void)
{
	__u32 zero = 0;
	struct fg_settings *s = bpf_map_lookup_elem(&settings, &zero);

	return s ? s->fib_gen : 0;
}

/* Resolves the next hop toward dst. Returns 0 when resolved;
 * BPF_FIB_LKUP_RET_NO_NEIGH when the route is known (nh->ifindex is set)
 * but the neighbour is not resolved yet, in which case nh is marked stale
 * so the next packet looks again; any other value when there is no route. */
static __always_inline int nexthop_lookup(struct xdp_md *ctx, __u8 family,
					  const struct fg_addr *src,
					  const struct fg_addr *dst,
					  struct fg_nexthop *nh, __u32 gen)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.ifindex = ctx->ingress_ifindex;
	if (family == FG_AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = src->v4;
		fib.ipv4_dst = dst->v4;
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		nh->ifindex = fib.ifindex;
		nh->fib_gen = ~gen;
		return rc;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc ? rc : -1;
	nh->ifindex = fib.ifindex;
	nh->fib_gen = gen;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	return 0;
}

static __always_inline int fib_verdict(const struct fg_pkt *pkt, int rc)
{
	return verdict(pkt, FG_R_FIB_FAIL, XDP_DROP);
}

static __always_inline bool source_allowed(__u32 service_id, const struct fg_flow *flow)
{
	struct fg_allow_key key = {
		.prefixlen = 32 + 128,
		.service_id = bpf_htonl(service_id),
	};

	if (flow->family == FG_AF_INET) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &flow->src.v4, 4);
	} else {
		__builtin_memcpy(key.addr, &flow->src, 16);
	}
	return bpf_map_lookup_elem(&allowlists, &key) != NULL;
}

/* Sends the rewritten packet to its next hop. When the neighbour is not
 * resolved yet (reason FG_R_FIB_NO_NEIGH) the rewritten packet is passed
 * to the stack instead, which forwards it and resolves the neighbour
 * (the agent sets accept_local on its interfaces for the SNAT source). */
static __always_inline int transmit(struct xdp_md *ctx, const struct fg_pkt *pkt,
				    const struct fg_rewrite *rw,
				    const struct fg_nexthop *nh, int reason)
{
	if (nat_rewrite(ctx, pkt, rw))
		return verdict(pkt, FG_R_TRUNC_IP, XDP_DROP);
	if (reason == FG_R_FIB_NO_NEIGH)
		return verdict(pkt, reason, XDP_PASS);
	if (eth_rewrite(ctx, pkt, nh))
		return verdict(pkt, FG_R_TRUNC_IP, XDP_DROP);
	count(&verdicts, reason, pkt->len);
	return bpf_redirect(nh->ifindex, 0);
}

static __always_inline int tx_reason(int fib_rc, int reason)
{
	return fib_rc == BPF_FIB_LKUP_RET_NO_NEIGH ? FG_R_FIB_NO_NEIGH : reason;
}

/* Forgets a flow: its conntrack entry and the reverse_nat entry that holds
 * its SNAT port. */
static __always_inline void flow_forget(const struct fg_flow *client, const struct fg_ct *ct)
{
	struct fg_backend *be = bpf_map_lookup_elem(&backends, &ct->backend_id);
	struct fg_flow rkey;

	if (be) {
		ct_reverse_key(&rkey, be, &ct->snat_addr, ct->snat_port,
			       client->proto, client->family);
		bpf_map_delete_elem(&reverse_nat, &rkey);
	}
	bpf_map_delete_elem(&conntrack, client);
}

static __always_inline __u8 initial_state(const struct fg_pkt *pkt)
{
	if (pkt->flow.proto == FG_PROTO_TCP) {
		if (pkt->tcp_flags & FG_TCP_FIN)
			return FG_CT_CLOSING;
		if (pkt->tcp_flags & FG_TCP_SYN)
			return FG_CT_NEW;
	}
	return FG_CT_ESTABLISHED;
}

/* Per-CPU scratch space for new-flow state: the BPF stack (512 bytes for
 * the whole call chain) cannot hold it. Not pinned: it holds nothing
 * between packets. */
struct fg_new_flow_scratch {
	struct fg_ct ct;
	struct fg_rnat rn;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_new_flow_scratch);
} new_flow_scratch SEC(".maps");

/* A port held by a flow that idled out (or closed and lingered past its FIN
 * timeout) is taken back: the stale flow's entries go, the new one takes the
 * tuple. Nothing else reclaims them but LRU pressure, so without this the
 * range would run dry under a steady stream of short connections. */
static __always_inline bool snat_port_reclaim(const struct fg_flow *rkey,
					      const struct fg_rnat *fresh, __u64 now)
{
	struct fg_rnat *old = bpf_map_lookup_elem(&reverse_nat, rkey);
	struct fg_flow stale;
	struct fg_ct *ct;

	if (!old || !ct_expired(old->last_seen_ns, rkey->proto, old->state, now))
		return false;
	stale = old->client;
	ct = bpf_map_lookup_elem(&conntrack, &stale);
	/* Only the conntrack entry that owned this port goes: the client may
	 * have opened a new flow on the same tuple since. */
	if (ct && ct->snat_port == rkey->dport && ct->snat_addr.v6[0] == rkey->dst.v6[0] &&
	    ct->snat_addr.v6[1] == rkey->dst.v6[1] && ct->snat_addr.v6[2] == rkey->dst.v6[2] &&
	    ct->snat_addr.v6[3] == rkey->dst.v6[3])
		bpf_map_delete_elem(&conntrack, &stale);
	return !bpf_map_update_elem(&reverse_nat, rkey, fresh, BPF_EXIST);
}

static __noinline int l4_new_flow(struct xdp_md *ctx, struct fg_pkt *pkt,
				  const struct fg_listener *lst, __u64 now, __u32 gen)
{
	struct fg_new_flow_scratch *scratch;
	struct fg_choice ch = {};
	struct fg_rewrite rw = {};
	struct fg_flow rkey;
	struct fg_iface *ifc;
	__u32 base, range, i;
	__u16 port = 0;
	__u32 zero = 0;
	int rc;

	scratch = bpf_map_lookup_elem(&new_flow_scratch, &zero);
	if (!scratch)
		return verdict(pkt, FG_R_CT_MAP_FULL, XDP_DROP);
	__builtin_memset(scratch, 0, sizeof(*scratch));
#define nct (scratch->ct)
#define rn (scratch->rn)

	if (lb_select(lst->service_id, &pkt->flow, &ch))
		return verdict(pkt, FG_R_NO_BACKEND, XDP_DROP);

	rc = nexthop_lookup(ctx, pkt->flow.family, &pkt->flow.src,
			    &ch.backend->addr, &nct.nh, gen);
	if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return fib_verdict(pkt, rc);

	ifc = bpf_map_lookup_elem(&ifaces, &nct.nh.ifindex);
	if (!ifc)
		return verdict(pkt, FG_R_NO_SNAT_ADDR, XDP_DROP);
	if (pkt->flow.family == FG_AF_INET) {
		if (!(ifc->flags & FG_IFACE_F_V4))
			return verdict(pkt, FG_R_NO_SNAT_ADDR, XDP_DROP);
		nct.snat_addr = ifc->v4;
	} else {
		if (!(ifc->flags & FG_IFACE_F_V6))
			return verdict(pkt, FG_R_NO_SNAT_ADDR, XDP_DROP);
		nct.snat_addr = ifc->v6;
	}

	rn.client = pkt->flow;
	rn.last_seen_ns = now;
	rn.backend_id = ch.backend_id;
	rn.state = initial_state(pkt);

	/* The SNAT port: probe the range from a per-flow start; the
	 * BPF_NOEXIST insert is atomic, so two CPUs can never hand out the
	 * same backend-side tuple. */
	range = (__u32)snat_port_max - snat_port_min + 1;
	if (range == 0 || range > 65536)
		return verdict(pkt, FG_R_NO_SNAT_PORT, XDP_DROP);
	base = fg_flow_hash(&pkt->flow, FG_SEED_SNAT);
	/* Unrolled: older verifiers (6.1) refuse the back-edge clang lays out
	 * for this loop. */
#pragma unroll
	for (i = 0; i < FG_SNAT_TRIES; i++) {
		port = snat_port_min + (base + i * 7919) % range;
		ct_reverse_key(&rkey, ch.backend, &nct.snat_addr, bpf_htons(port),
			       pkt->flow.proto, pkt->flow.family);
		if (!bpf_map_update_elem(&reverse_nat, &rkey, &rn, BPF_NOEXIST))
			break;
		if (snat_port_reclaim(&rkey, &rn, now))
			break;
	}
	if (i == FG_SNAT_TRIES)
		return verdict(pkt, FG_R_NO_SNAT_PORT, XDP_DROP);

	nct.last_seen_ns = now;
	nct.backend_id = ch.backend_id;
	nct.backend_gen = ch.backend->gen;
	nct.service_id = lst->service_id;
	nct.cluster_idx = ch.cluster_idx;
	nct.state = rn.state;
	nct.snat_port = bpf_htons(port);
	if (bpf_map_update_elem(&conntrack, &pkt->flow, &nct, BPF_ANY)) {
		bpf_map_delete_elem(&reverse_nat, &rkey);
		return verdict(pkt, FG_R_CT_MAP_FULL, XDP_DROP);
	}

	rw.saddr = nct.snat_addr;
	rw.sport = nct.snat_port;
	rw.daddr = ch.backend->addr;
	rw.dport = ch.backend->port;
	count(&backend_stats, ch.backend_id, pkt->len);
	count(&cluster_stats, ch.cluster_idx, pkt->len);
	/* A RST retires the flow even when it is the first packet we see of
	 * it: spoofed RSTs must not hold conntrack entries and SNAT ports. */
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		bpf_map_delete_elem(&conntrack, &pkt->flow);
		bpf_map_delete_elem(&reverse_nat, &rkey);
	}
	return transmit(ctx, pkt, &rw, &nct.nh, tx_reason(rc, FG_R_FORWARD));
#undef nct
#undef rn
}

/* Keeps the reverse_nat entry of a live flow alive (or takes it back if
 * the LRU dropped it), so its SNAT port is never handed to another flow. */
static __always_inline void ct_keep_port(const struct fg_pkt *pkt, struct fg_ct *ct,
					 const struct fg_backend *be, __u64 now)
{
	struct fg_flow rkey;
	struct fg_rnat *rn, fresh = {};

	ct_reverse_key(&rkey, be, &ct->snat_addr, ct->snat_port,
		       pkt->flow.proto, pkt->flow.family);
	rn = bpf_map_lookup_elem(&reverse_nat, &rkey);
	if (rn) {
		rn->last_seen_ns = now;
		return;
	}
	fresh.client = pkt->flow;
	fresh.last_seen_ns = now;
	fresh.backend_id = ct->backend_id;
	fresh.state = ct->state;
	bpf_map_update_elem(&reverse_nat, &rkey, &fresh, BPF_NOEXIST);
}

/* l4_forward's answer when the flow has no usable conntrack entry. */
#define FG_NEED_NEW_FLOW (-1)

/* A FIN from the client: both entries learn which sides have closed (the
 * reverse entry holds the SNAT port and must time out with conntrack). */
static __always_inline void ct_client_fin(const struct fg_pkt *pkt, struct fg_ct *ct,
					  const struct fg_backend *be)
{
	struct fg_flow rkey;
	struct fg_rnat *rn;
	__u8 fins = ct->fins | FG_FIN_CLIENT;

	ct_reverse_key(&rkey, be, &ct->snat_addr, ct->snat_port,
		       pkt->flow.proto, pkt->flow.family);
	rn = bpf_map_lookup_elem(&reverse_nat, &rkey);
	if (rn) {
		fins |= rn->fins;
		rn->fins = fins;
		rn->state = ct_state_after_fins(fins);
	}
	ct->fins = fins;
	ct->state = ct_state_after_fins(fins);
}

static __noinline int l4_forward(struct xdp_md *ctx, struct fg_pkt *pkt,
				      const struct fg_listener *lst)
{
	__u64 now = fg_now();
	__u32 gen = fib_gen_now();
	struct fg_backend *be = NULL;
	struct fg_rewrite rw = {};
	struct fg_nexthop nh;
	struct fg_ct *ct;
	bool syn = pkt->flow.proto == FG_PROTO_TCP &&
		   (pkt->tcp_flags & (FG_TCP_SYN | FG_TCP_ACK)) == FG_TCP_SYN;
	int rc;

	ct = bpf_map_lookup_elem(&conntrack, &pkt->flow);
	if (ct) {
		if (ct_expired(ct->last_seen_ns, pkt->flow.proto, ct->state, now) ||
		    (syn && ct->state >= FG_CT_CLOSING) ||
		    ct->service_id != lst->service_id) {
			flow_forget(&pkt->flow, ct);
			ct = NULL;
		} else {
			be = bpf_map_lookup_elem(&backends, &ct->backend_id);
			/* Failover: a flow on a backend marked down, or whose
			 * backend id was given to another endpoint since, is
			 * re-selected. */
			if (!be || !backend_is_up(be) || be->gen != ct->backend_gen) {
				flow_forget(&pkt->flow, ct);
				ct = NULL;
			}
		}
	}
	if (!ct || !be)
		return FG_NEED_NEW_FLOW;

	nh = ct->nh;
	rc = 0;
	if (nh.fib_gen != gen || !nh.ifindex) {
		rc = nexthop_lookup(ctx, pkt->flow.family, &pkt->flow.src,
				    &be->addr, &nh, gen);
		if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_verdict(pkt, rc);
		ct->nh = nh;
	}
	if (now - ct->last_seen_ns > FG_CT_REFRESH_NS) {
		ct->last_seen_ns = now;
		ct_keep_port(pkt, ct, be, now);
	}
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_FIN) &&
	    !(ct->fins & FG_FIN_CLIENT))
		ct_client_fin(pkt, ct, be);

	rw.saddr = ct->snat_addr;
	rw.sport = ct->snat_port;
	rw.daddr = be->addr;
	rw.dport = be->port;
	count(&backend_stats, ct->backend_id, pkt->len);
	count(&cluster_stats, ct->cluster_idx, pkt->len);
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		struct fg_ct copy = *ct;

		flow_forget(&pkt->flow, &copy);
	}
	return transmit(ctx, pkt, &rw, &nh, tx_reason(rc, FG_R_FORWARD));
}

/* A backend's reply to the gateway's SNAT address: back to the client. */
static __noinline int l4_reply(struct xdp_md *ctx, struct fg_pkt *pkt)
{
	struct fg_rewrite rw = {};
	struct fg_flow client;
	struct fg_nexthop nh;
	struct fg_rnat *rn;
	struct fg_ct *ct;
	__u64 now;
	__u32 gen;
	__u8 state, fins;
	int rc;

	rn = bpf_map_lookup_elem(&reverse_nat, &pkt->flow);
	if (!rn)
		return verdict(pkt, FG_R_NO_LISTENER, XDP_PASS);
	now = fg_now();
	if (ct_expired(rn->last_seen_ns, pkt->flow.proto, rn->state, now)) {
		bpf_map_delete_elem(&reverse_nat, &pkt->flow);
		return verdict(pkt, FG_R_NO_LISTENER, XDP_PASS);
	}
	client = rn->client;
	gen = fib_gen_now();
	nh = rn->nh;
	rc = 0;
	if (nh.fib_gen != gen || !nh.ifindex) {
		rc = nexthop_lookup(ctx, client.family, &client.dst, &client.src, &nh, gen);
		if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_verdict(pkt, rc);
		rn->nh = nh;
	}

	state = rn->state;
	fins = rn->fins;
	if (pkt->flow.proto == FG_PROTO_TCP) {
		if (pkt->tcp_flags & FG_TCP_FIN) {
			fins |= FG_FIN_BACKEND;
			state = ct_state_after_fins(fins);
		} else if (state == FG_CT_NEW) {
			state = FG_CT_ESTABLISHED;
		}
	}
	if (state != rn->state || fins != rn->fins ||
	    now - rn->last_seen_ns > FG_CT_REFRESH_NS) {
		rn->last_seen_ns = now;
		ct = bpf_map_lookup_elem(&conntrack, &client);
		if (ct) {
			ct->last_seen_ns = now;
			fins |= ct->fins;
			if (fins)
				state = ct_state_after_fins(fins);
			ct->fins = fins;
			ct->state = state;
		}
		rn->fins = fins;
		rn->state = state;
	}
	count(&backend_stats, rn->backend_id, pkt->len);

	rw.saddr = client.dst;
	rw.sport = client.dport;
	rw.daddr = client.src;
	rw.dport = client.sport;
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		bpf_map_delete_elem(&conntrack, &client);
		bpf_map_delete_elem(&reverse_nat, &pkt->flow);
	}
	return transmit(ctx, pkt, &rw, &nh, tx_reason(rc, FG_R_REPLY));
}

SEC("xdp")
int xdp_gateway(struct xdp_md *ctx)
{
	struct fg_listener_key lkey = {};
	struct fg_listener *lst;
	struct fg_pkt pkt = {};
	int reason;

	reason = parse_packet(ctx, &pkt);
	if (reason != FG_R_MAX)
		return parse_verdict(&pkt, reason);

	lkey.vip = pkt.flow.dst;
	lkey.port = pkt.flow.dport;
	lkey.proto = pkt.flow.proto;
	lkey.family = pkt.flow.family;
	lst = bpf_map_lookup_elem(&listeners, &lkey);
	if (!lst)
		return l4_reply(ctx, &pkt);

	count(&listener_stats, lst->stats_idx, pkt.len);
	if ((lst->flags & FG_LISTENER_F_ALLOWLIST) &&
	    !source_allowed(lst->service_id, &pkt.flow))
		return verdict(&pkt, FG_R_ALLOWLIST, XDP_DROP);
	if (lst->kind != FG_LISTENER_L4)
		return verdict(&pkt, FG_R_L7, XDP_PASS);
	/* Separate calls rather than nested ones keep the combined stack of
	 * the BPF-to-BPF call chain under the 512-byte limit. */
	reason = l4_forward(ctx, &pkt, lst);
	if (reason != FG_NEED_NEW_FLOW)
		return reason;
	return l4_new_flow(ctx, &pkt, lst, fg_now(), fib_gen_now());
}
